"""The production server (idp.web.server) as operators run it: connections kept alive, graceful
stop and restart, workers replaced when they die, age or hang, the metrics directory emptied at
start, JSON log lines; and the malloc settings of each worker, which give argon2's memory back
after each hash (worker_app) and map it in huge pages (main)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from idp.web import server
from tests.servers import behind, node_environment
from tests.timing import until

pytestmark = pytest.mark.server

TOKEN_REQUEST_HEAD = ("POST /malakoff/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n")
BODY = b"grant_type=client_credentials&client_id=nobody"
ANSWERED = b'{"error": "unsupported_grant_type"}'  # the provider read the grant type at the end


@pytest.fixture
def environment(settings):
    return node_environment(settings, cookie_secure=False)


def started_request(port: int) -> socket.socket:
    """A token request whose body is still on its way: the worker has begun it and waits for
    the rest (send ``BODY[1:]`` to finish it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(TOKEN_REQUEST_HEAD.format(length=len(BODY)).encode() + BODY[:1])
    time.sleep(0.5)
    return sock


def answer(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    return received


def test_connections_are_kept_alive_between_requests_whose_answers_are_dated(provider_nodes, environment):
    node = provider_nodes(environment)
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    statuses = []
    for path in ("/healthz", "/malakoff/jwks", "/malakoff/.well-known/openid-configuration"):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        # RFC 9110 6.6.1: an origin server with a clock sends Date (the metadata answers leave it
        # to the server); the provider's security headers come through it.
        assert response.getheader("Date"), path
        assert response.getheader("X-Content-Type-Options") == "nosniff", path
        if path == "/healthz":
            first = connection.sock
        assert connection.sock is first is not None, "the same connection, still open"
    connection.close()
    assert statuses == [200, 200, 200]


def test_sigterm_lets_requests_in_flight_finish_and_takes_no_new_ones(provider_nodes, environment):
    node = provider_nodes(environment)
    in_flight = started_request(node.port)
    node.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{node.url}/healthz", timeout=2)
    in_flight.sendall(BODY[1:])
    assert ANSWERED in answer(in_flight), "the whole request read and answered"
    assert node.process.wait(timeout=20) == 0


def test_sighup_replaces_the_workers_without_dropping_a_request(provider_nodes, environment):
    node = provider_nodes(environment, workers=2)
    before = set(node.worker_pids())
    in_flight = started_request(node.port)
    node.process.send_signal(signal.SIGHUP)
    time.sleep(1)
    in_flight.sendall(BODY[1:])
    assert ANSWERED in answer(in_flight)
    until(lambda: len(node.worker_pids()) == 2 and not before & set(node.worker_pids()))
    assert requests.get(f"{node.url}/healthz", timeout=5).status_code == 200


def test_a_worker_that_dies_is_replaced(provider_nodes, environment):
    node = provider_nodes(environment)
    (worker,) = node.worker_pids()
    os.kill(worker, signal.SIGKILL)
    until(lambda: node.worker_pids() not in ([], [worker]))
    assert node.answers_within(20)
    assert node.process.poll() is None


@pytest.fixture
def held_environment(settings, proxy):
    """A node's environment whose database is behind ``proxy``, waiting up to 10 s on it."""
    if not settings["database_url"].startswith("postgresql"):
        pytest.skip("a request is held by a frozen PostgreSQL (set IDP_TEST_DATABASE_URL)")
    return node_environment(settings, cookie_secure=False, database_url=behind(proxy, settings),
                            database_statement_timeout=10, database_connect_timeout=10)


def held_request(node, proxy) -> socket.socket:
    """A UserInfo read held by the frozen database: it takes a worker's thread until the proxy
    thaws (then it is answered 401: its token is unknown)."""
    url = f"http://127.0.0.1:{node.port}/malakoff/userinfo"
    unknown = {"Authorization": "Bearer unknown"}
    assert requests.get(url, headers=unknown, timeout=10).status_code == 401  # a pooled connection
    proxy.freeze()
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=30)
    sock.sendall(b"GET /malakoff/userinfo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 b"Authorization: Bearer unknown\r\n\r\n")
    time.sleep(0.5)
    return sock


def test_a_request_over_the_time_limit_ends_its_worker_which_is_replaced(
        provider_nodes, held_environment, proxy):
    node = provider_nodes(held_environment, options=("--timeout", "2"))
    (worker,) = node.worker_pids()
    stuck = held_request(node, proxy)  # the database does not answer within the time limit
    assert answer(stuck) == b"", "the connection is closed without an answer"
    until(lambda: node.worker_pids() not in ([], [worker]))
    assert node.answers_within(20)
    records = [json.loads(line) for line in node.log_lines()]
    assert any(record["logger"] == "idp.web.server" and record["level"] == "ERROR"
               and "more than 2.0s" in record["message"] for record in records)


def test_a_worker_stopped_writes_the_request_lines_it_was_holding(provider_nodes, environment, tmp_path):
    """The lines a worker holds (here for an hour: its interval set as it starts) are written
    when the server is stopped (SIGTERM), before the worker ends."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import idp.logs\nidp.logs.REQUEST_LINES.interval = 3600\n")
    path = os.pathsep.join(filter(None, (str(site), environment.get("PYTHONPATH"))))
    node = provider_nodes({**environment, "PYTHONPATH": path})
    discovery = "/malakoff/.well-known/openid-configuration"
    for _ in range(3):
        assert requests.get(f"{node.url}{discovery}", timeout=5).status_code == 200

    def answered() -> int:
        return sum(1 for line in node.log_lines()
                   if (record := json.loads(line))["logger"] == "idp.request" and record["path"] == discovery)

    time.sleep(0.5)
    assert answered() == 0, "the worker holds them"
    node.stop()
    assert answered() == 3


def test_the_metrics_directory_starts_empty_and_logs_are_json_lines(
        provider_nodes, environment, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = directory / "counter_999999.db"
    stale.write_bytes(b"counts of a previous run")
    node = provider_nodes({**environment, "PROMETHEUS_MULTIPROC_DIR": str(directory)}, workers=2)
    assert not stale.exists()

    def records() -> list[dict]:
        return [json.loads(line) for line in node.log_lines()]

    assert any(record["logger"] == "_granian" and "Listening at" in record["message"]
               for record in records()), "the server's own messages"
    # The readiness checks' lines and counts: a worker writes and counts its requests every 20 ms.
    until(lambda: any(record["logger"] == "idp.request" for record in records()), seconds=5)
    until(lambda: list(directory.glob("*.db")), seconds=5)  # the workers keep their counters there
    assert not any(record["logger"] == "granian.access" for record in records())


def test_the_metadata_documents_are_read_while_every_request_thread_is_busy(
        provider_nodes, held_environment, proxy):
    """A worker of one thread, held by a request waiting on the database, still answers a
    read of the discovery document and the JWKS: they wait on nothing and take no thread."""
    node = provider_nodes(held_environment, options=("--threads", "1"))
    held = held_request(node, proxy)
    try:
        for path in ("/malakoff/jwks", "/miel/.well-known/openid-configuration"):
            response = requests.get(f"http://127.0.0.1:{node.port}{path}", timeout=5)
            assert response.status_code == 200, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        # Anything else waits for the thread.
        with pytest.raises(requests.Timeout):
            requests.get(f"http://127.0.0.1:{node.port}/healthz", timeout=1)
        proxy.thaw()
        assert answer(held).startswith(b"HTTP/1.1 401")
    finally:
        held.close()


def test_a_body_slow_to_come_takes_no_thread(provider_nodes, environment):
    """The body is read before its request takes a thread: a worker of one thread answers
    other requests while a body is on its way, then that request too."""
    node = provider_nodes(environment, options=("--threads", "1"))
    coming = started_request(node.port)
    try:
        assert requests.get(f"http://127.0.0.1:{node.port}/healthz", timeout=5).status_code == 200
        coming.sendall(BODY[1:])
        assert ANSWERED in answer(coming)
    finally:
        coming.close()


def _peak_rss_mib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


def test_a_body_past_the_limit_is_refused_without_being_held(provider_nodes, environment):
    """However long a chunked body is, a worker holds at most the provider's limit (1 MiB) of
    it before refusing it."""
    node = provider_nodes(environment)
    (worker,) = node.worker_pids()
    before = _peak_rss_mib(worker)
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=30)
    sock.sendall(b"POST /malakoff/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
    with contextlib.suppress(OSError):  # answered and closed before the whole body was sent
        for _ in range(64):  # 64 MiB
            sock.sendall(chunk)
        sock.sendall(b"0\r\n\r\n")
    assert answer(sock).startswith((b"HTTP/1.1 400", b"HTTP/1.1 413"))
    assert _peak_rss_mib(worker) - before < 16, "the worker held the body"


def test_release_large_blocks_gives_argon2_memory_back_after_each_hash():
    # Each verify allocates the whole memory cost; without this malloc setting the process
    # keeps it (about 19 MiB more after a few sign-ins). Every worker applies it (worker_app).
    script = f"""
import sys
sys.path.insert(0, {str(Path(server.__file__).parents[2])!r})
from argon2 import PasswordHasher
from idp.web.server import release_large_blocks
release_large_blocks()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
hasher = PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1)
stored = hasher.hash("x")
before = rss()
for _ in range(5):
    hasher.verify(stored, "x")
    small = bytearray(200_000)
    del small
print(rss() - before)
"""
    done = subprocess.run([sys.executable, "-c", script],  # noqa: S603 - our own script
                          capture_output=True, text=True, check=True)
    assert int(done.stdout) < 5, f"RSS grew by {done.stdout.strip()} MiB over five hashes"


def test_a_worker_maps_argon2_memory_in_huge_pages_where_the_kernel_offers_them(provider_nodes, environment):
    node = provider_nodes(environment)
    (worker,) = node.worker_pids()
    # Started again with the tunable, in the same process: the one the node started, its signals.
    for pid in (node.process.pid, worker):
        variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"{server.TUNABLES_VARIABLE}={server.HUGE_PAGES_TUNABLE}".encode() in variables
    assert node.answers_within(20)


HASHES = f"""
import resource, sys
sys.path.insert(0, {str(Path(server.__file__).parents[2])!r})
from argon2 import PasswordHasher
from idp.web.server import release_large_blocks
release_large_blocks()
hasher = PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1)
stored = hasher.hash("x")
hasher.verify(stored, "x")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    hasher.verify(stored, "x")
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def test_huge_pages_spare_argon2_thousands_of_page_faults_a_hash():
    def faults(environ: dict[str, str]) -> int:
        done = subprocess.run([sys.executable, "-c", HASHES], env=environ,  # noqa: S603 - our own script
                              capture_output=True, text=True, check=True)
        return int(done.stdout)

    plain = {name: value for name, value in os.environ.items() if name != server.TUNABLES_VARIABLE}
    tuned = server.huge_pages_environment(plain)
    assert tuned is not None
    # 19 MiB mapped afresh at each hash: a fault per 4 KiB page without huge pages.
    assert faults(plain) > 4000
    offered = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    if "[never]" in offered:  # the kernel offers none: the tunable changes nothing
        assert faults(tuned) > 4000
    else:
        assert faults(tuned) < 1000


def test_the_huge_pages_tunable_joins_the_others_once(monkeypatch):
    assert server.huge_pages_environment({"A": "1"}) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert server.huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    assert server.huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    monkeypatch.setattr(server.platform, "libc_ver", lambda: ("", ""))
    assert server.huge_pages_environment({}) is None


def test_options_come_from_the_environment_and_the_command_line(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_TIMEOUT", "20")
    monkeypatch.delenv("WEB_THREADS", raising=False)
    options = server.parse_args([])
    # Four threads a worker by default: one runs while others wait on a round trip.
    assert (options.bind, options.workers, options.threads, options.timeout) == ("0.0.0.0:8000", 3, 4, 20)
    monkeypatch.setenv("WEB_THREADS", "2")
    assert server.parse_args([]).threads == 2
    assert server.parse_args(["--threads", "1"]).threads == 1
    with pytest.raises(SystemExit):
        server.parse_args(["--bind", "8000"])
    # Workers are replaced one at a time, a few seconds apart: an hour is usual.
    assert server.parse_args(["--workers-lifetime", "3600"]).workers_lifetime == 3600
    with pytest.raises(SystemExit):
        server.parse_args(["--workers-lifetime", "59"])


def test_an_option_from_the_environment_that_is_not_a_number_is_named(monkeypatch, capsys):
    monkeypatch.setenv("WEB_CONCURRENCY", "deux")
    with pytest.raises(SystemExit) as stopped:
        server.parse_args([])
    assert stopped.value.code == 2
    assert "WEB_CONCURRENCY must be a whole number, not 'deux'" in capsys.readouterr().err


@pytest.mark.parametrize(("bind", "said"), [
    ("localhost:8000", "--bind takes an IP address and a port, as 0.0.0.0:8000 or [::]:8000, "
                       "not 'localhost:8000'"),
    (":8000", "--bind takes an IP address and a port"),
    ("127.0.0.1:99999", "--bind: the port is a number from 0 to 65535, not '99999'"),
    ("127.0.0.1:http", "--bind: the port is a number from 0 to 65535, not 'http'"),
])
def test_a_bind_that_is_no_ip_address_and_port_is_named(capsys, bind, said):
    with pytest.raises(SystemExit) as stopped:
        server.parse_args(["--bind", bind])
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_an_ipv6_bind_is_written_in_brackets_or_without():
    assert server.parse_args(["--bind", "[::1]:8000"]).host == "::1"
    assert server.parse_args(["--bind", "::1:8000"]).host == "::1"
    options = server.parse_args(["--bind", "127.0.0.1:0"])
    assert (options.host, options.port) == ("127.0.0.1", 0)


def test_an_address_the_server_cannot_listen_on_stops_it_in_one_line(environment):
    """A port taken (another server), an address that is not this machine's: said by the
    command, not as the server's traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        for bind, reason in ((f"127.0.0.1:{taken.getsockname()[1]}", "Address already in use"),
                             ("192.0.2.1:8000", "Cannot assign requested address")):
            done = subprocess.run(  # noqa: S603 - the server's own command
                [sys.executable, "-m", "idp.web.server", "--bind", bind], env=environment,
                capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 1
            assert done.stderr.splitlines() == [
                f"python -m idp.web.server: error: cannot listen on {bind}: {reason}"], done.stderr


def test_a_setting_the_provider_cannot_run_with_stops_the_server_before_any_worker(environment, tmp_path):
    """Said once, in one line, by the server itself: not as each worker's traceback, respawned."""
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for path in Path(environment["IDP_TENANTS_DIR"]).glob("*.toml"):
        text = path.read_text(encoding="utf-8")
        if path.stem == "malakoff":  # a passkey origin a browser would refuse
            text += '\n[passkeys]\nrp_id = "id.example.org"\norigins = ["http://id.example.org"]\n'
        (tenants / path.name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "idp.web.server", "--bind", "127.0.0.1:0"],
        env={**environment, "IDP_TENANTS_DIR": str(tenants)}, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("python -m idp.web.server: error: configuration: ")
    assert "malakoff" in lines[0] and "http://id.example.org" in lines[0]


APP_MODULES = """
import json, sys
from idp import create_app
create_app()
print(json.dumps(sorted(sys.modules)))
"""


def _packages_of_a_started_worker(environment):
    done = subprocess.run([sys.executable, "-c", APP_MODULES], env=environment, capture_output=True,  # noqa: S603
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


def test_a_worker_loads_no_pdf_library(environment):
    # Letters are rendered by the process that posts them (idp outbox work) or shows them (the
    # outbox page); the PDF library and its fonts weigh about 20 MiB in every worker otherwise.
    assert _packages_of_a_started_worker(environment) & {"fpdf", "fontTools", "PIL"} == set()


def test_a_worker_loads_no_user_agent_parser_before_its_first_label(environment):
    # Devices are said in words on the account pages and in the new-browser email only; the
    # parser's compiled expressions weigh about 2 MiB.
    assert _packages_of_a_started_worker(environment) & {"ua_parser", "ua_parser_builtins"} == set()

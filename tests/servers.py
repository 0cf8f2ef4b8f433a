"""Real servers the tests start on local ports: an SMTP server (aiosmtpd), an SMS gateway
(http.server), a Redis server, a PostgreSQL cluster, the provider itself under its production server,
a self-signed certificate for TLS, and a clock moved by hand."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import redis
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from idp import schema
from idp.channels.senders import HttpSmsSender, SmtpEmailSender
from tests.conftest import IN_CI, ROOT, free_port, on_free_ports, serving

SMTP_USER = "relay-user"
SMTP_PASSWORD = "relay-password-0123"
GATEWAY_TOKEN = "gateway-token-abcdef"
MAIL_FROM = "Espace membre <no-reply@example.org>"


class Clock:
    """Naive UTC, frozen until the test moves it."""

    def __init__(self):
        self.now = dt.datetime(2026, 3, 14, 9, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts this certificate (and checks the host name against it)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test SMTP server")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None
    raw: bytes  # the message as it came over the wire
    peer: tuple[str, int]  # the client's address and port: one per connection


class _Handler:
    def __init__(self, inbox: list[Received], quits: list[tuple[str, int]]):
        self.inbox = inbox
        self.quits = quits

    async def handle_QUIT(self, server, session, envelope):
        self.quits.append(session.peer)
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if session.auth_data else None
        self.inbox.append(Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            message_from_bytes(envelope.content, policy=policy.default),
            login,
            envelope.content,
            session.peer,
        ))
        return "250 Message accepted"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _Controller(Controller):
    """aiosmtpd's controller, whose stop also closes the sessions still open, as a relay's stop
    does (asyncio's server leaves them open)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session = super().factory()
        self.sessions.append(session)
        return session

    def stop(self, no_assert: bool = False) -> None:
        async def close_sessions() -> None:
            for session in self.sessions:
                if session.transport is not None:
                    session.transport.abort()
            await asyncio.sleep(0.01)  # their connection_lost, which closes the sockets

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(close_sessions(), self.loop).result(timeout=5)
        self.sessions.clear()
        super().stop(no_assert)


@dataclass
class SmtpServer:
    """A real SMTP server on a free local port; stop() and start() keep the port."""

    mode: str = "none"  # "none", "starttls" (STARTTLS then AUTH required), "ssl"
    smtputf8: bool = False  # offers SMTPUTF8 (RFC 6531): takes addresses that are not ASCII
    certificate: Certificate | None = None
    port: int = field(default_factory=lambda: free_port())  # looked up when made: tests replace it
    inbox: list[Received] = field(default_factory=list)
    quits: list[tuple[str, int]] = field(default_factory=list)  # the peers that said QUIT
    controller: Controller | None = None

    def start(self) -> SmtpServer:
        options = {}
        if self.mode == "starttls":
            options = {
                "tls_context": self.certificate.server_context(),
                "require_starttls": True,
                "auth_required": True,
                "auth_require_tls": True,
                "authenticator": _authenticate,
            }
        elif self.mode == "ssl":
            options = {"ssl_context": self.certificate.server_context()}
        self.controller = _Controller(
            _Handler(self.inbox, self.quits), hostname="127.0.0.1", port=self.port,
            enable_SMTPUTF8=self.smtputf8, **options
        )
        try:
            self.controller.start()
        except BaseException:
            self.controller.loop.close()  # a controller that did not start leaves it open
            self.controller = None
            raise
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def sender(self, security: str = "none", **options) -> SmtpEmailSender:
        if self.certificate is not None and "ssl_context" not in options:
            options["ssl_context"] = self.certificate.client_context()
        return SmtpEmailSender("127.0.0.1", self.port, mail_from=MAIL_FROM, security=security,
                               timeout=5, **options)


@pytest.fixture
def smtp_server():
    """A plain SMTP server (a local relay or mail catcher)."""
    server = on_free_ports(lambda: SmtpServer().start())
    yield server
    server.stop()


@pytest.fixture
def smtp_servers(certificate):
    """Start SMTP servers in other modes: smtp_servers("starttls"), smtp_servers("ssl")."""
    started: list[SmtpServer] = []

    def start(mode: str) -> SmtpServer:
        server = on_free_ports(lambda: SmtpServer(mode=mode, certificate=certificate).start())
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class GatewayRequest:
    path: str
    headers: dict[str, str]
    body: dict


class SmsGateway:
    """A local HTTP SMS gateway (or letter provider: JSON too): records each POST and answers
    ``status``."""

    def __init__(self, path: str = "/v1/sms"):
        self.requests: list[GatewayRequest] = []
        self.status = 202
        self.location: str | None = None
        self.delay = 0.0
        self.release = threading.Event()  # ends a delay early when the gateway closes
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                gateway.requests.append(GatewayRequest(self.path, dict(self.headers), body))
                if gateway.delay:
                    gateway.release.wait(gateway.delay)
                payload = b'{"id": "sms-1"}'
                self.send_response(gateway.status)
                if gateway.location:
                    self.send_header("Location", gateway.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args):  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A client that gave up (timeout test) makes the late answer fail: expected.
        self.server.handle_error = lambda _request, _address: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def sender(self, **options) -> HttpSmsSender:
        return HttpSmsSender(self.url, GATEWAY_TOKEN, "MALAKOFF", **options)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def sms_gateway():
    gateway = SmsGateway()
    yield gateway
    gateway.close()


@pytest.fixture
def channels(app, clock):
    """The app's channels on the test clock; replace senders with ``channels(email_sender=…)``."""

    def build(**changes):
        return dataclasses.replace(app.extensions["idp"].channels, clock=clock, **changes)

    return build


class _Server(Protocol):
    port: int

    def start(self) -> Any: ...


S = TypeVar("S", bound=_Server)


def on_a_free_port(server: S) -> S:
    """``server.start()`` on a free port, on another while it finds the one it took taken since
    (its ``start`` raises ``EADDRINUSE``): a child process binds it, some time after its choice."""

    def start() -> S:
        server.port = free_port()
        server.start()
        return server

    return on_free_ports(start)


def port_taken(log: str) -> OSError:
    return OSError(errno.EADDRINUSE, f"the port was taken before the server bound it:\n{log[-2000:]}")


REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """A Redis of the test's own on a free port, to stop and start during a flow."""

    def __init__(self):
        self.port = 0  # on_a_free_port's
        descriptor, log = tempfile.mkstemp(prefix="idp-test-redis-", suffix=".log")
        os.close(descriptor)  # redis-server writes it (--logfile)
        self.log = Path(log)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.log.write_text("")  # this start's lines only
        self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary and arguments
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(redis.RedisError), redis.Redis(
                    port=self.port, socket_timeout=1, socket_connect_timeout=1) as client:
                # This one's, not another server's that took the port meanwhile.
                if client.info("server")["process_id"] == self.process.pid:
                    return self
            time.sleep(0.05)
        self.stop()
        log = self.log.read_text(errors="replace")
        if "Address already in use" in log:
            raise port_taken(log)
        raise RuntimeError(f"redis-server did not start:\n{log[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server():
    if REDIS_SERVER is None:
        missing("redis-server is not installed")
    server = on_a_free_port(RedisServer())
    yield server
    server.stop()
    server.log.unlink(missing_ok=True)


def _postgres_binaries() -> Path:
    """IDP_TEST_PG_BIN, else the newest of Debian's installed PostgreSQL versions."""
    if os.environ.get("IDP_TEST_PG_BIN"):
        return Path(os.environ["IDP_TEST_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    return versions[-1] if versions else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_binaries()


def _as_postgres() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresServer:
    """A PostgreSQL cluster of the test run's own (initdb in a temporary directory, a free
    port), to stop and start during a flow; the machine's own server is never touched."""

    def __init__(self):
        self.port = 0  # on_a_free_port's
        self.directory = Path(tempfile.mkdtemp(prefix="idp-test-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"

    def _run(self, *command: str) -> None:
        result = subprocess.run(  # noqa: S603 - fixed local binaries and arguments
            [*_as_postgres(), *command], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr or result.stdout}")

    def init(self) -> PostgresServer:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-sync")
        return self

    def start(self) -> PostgresServer:
        # No fsync: the machine does not crash in a test, only PostgreSQL stops. Commits stay
        # synchronous, so that an immediate stop never loses one (as a real crash would not).
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                   "-c fsync=off -c full_page_writes=off")
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                      "-t", "30", "-o", options, "start")
        except RuntimeError:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "Address already in use" in log:
                self.log.unlink()
                raise port_taken(log) from None
            raise
        return self

    def stop(self) -> None:
        """Stop at once, as a crash would: connections are cut, open transactions lost."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def running(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database with the provider's schema; its URL."""
        name = f"idp_{secrets.token_hex(4)}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
        engine = create_engine(self.url(name))
        schema.upgrade(engine)
        engine.dispose()
        return self.url(name)

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def missing(what: str) -> None:
    """Skip a test that needs a server binary, except under CI, where it is an error."""
    if IN_CI:
        pytest.fail(f"CI=true but {what}")
    pytest.skip(what)


@pytest.fixture(scope="session")
def postgres_cluster():
    if not (PG_BIN / "initdb").exists():
        missing(f"PostgreSQL's initdb is not in {PG_BIN} (set IDP_TEST_PG_BIN)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing("running as root without runuser to start PostgreSQL as its own user")
    server = on_a_free_port(PostgresServer().init())
    yield server
    server.remove()


@pytest.fixture
def postgres_server(postgres_cluster):
    """The test run's PostgreSQL, running at the start of the test whatever the last one did."""
    if not postgres_cluster.running:
        postgres_cluster.start()
    return postgres_cluster


@contextlib.contextmanager
def werkzeug_serving(app):
    """``app`` under Werkzeug's threaded server (the demo's) on a free port; yields its base URL.
    Its database pool and Redis client are closed once it stopped."""
    try:
        with serving(app) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        services = app.extensions["idp"]
        services.database.engine.dispose()
        if services.settings.redis_url:
            services.store.close()


def node_environment(settings: dict, **overrides) -> dict[str, str]:
    """The environment of a provider process for these settings (IDP_<NAME> variables)."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("IDP_", "PROMETHEUS_"))}
    for key, value in {**settings, **overrides}.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        environment[f"IDP_{key.upper()}"] = str(value)
    return environment


class ProviderNode:
    """The provider under its production server (idp.web.server), on a free local port."""

    def __init__(self, environment: dict[str, str], log_file: Path, *, workers: int = 1,
                 options: tuple[str, ...] = ()):
        self.environment = environment
        self.log_file = log_file
        self.workers = workers
        self.options = options
        self.port = 0  # on_a_free_port's
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProviderNode:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command
                [sys.executable, "-m", "idp.web.server", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(self.workers), *self.options],
                cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        if self.answers_within(30):
            return self
        self.stop()
        log = self.log_file.read_text()
        if f"cannot listen on 127.0.0.1:{self.port}: Address already in use" in log:
            raise port_taken(log)
        raise RuntimeError(f"the provider did not start:\n{log[-3000:]}")

    def answers_within(self, seconds: float) -> bool:
        """Whether a worker answers within that time (none listens while a lone worker is being
        replaced: each worker has its own listening socket)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the server process), from /proc."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            # A worker still starting when the server was told to stop may miss it: none outlives
            # the test (the server's process group is its own).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None

    def log_lines(self) -> list[str]:
        """The lines written whole so far (the server may be writing the next)."""
        text = self.log_file.read_text(encoding="utf-8")
        return text[:text.rfind("\n") + 1].splitlines()


class FreezableProxy:
    """Forwards TCP connections to PostgreSQL until frozen: then it keeps every socket open
    and forwards nothing, in either direction, as a host that stopped answering would."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        # A connection opened while frozen is accepted by the kernel, then never answered.
        while not self.flowing.wait(0.05):
            if self.closed.is_set():
                return
        upstream = socket.create_connection(self.upstream)
        self.sockets.append(upstream)
        other = {client: upstream, upstream: client}
        try:
            while not self.closed.is_set():
                if not self.flowing.wait(0.05):
                    continue
                readable, _, _ = select.select(list(other), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    other[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


@pytest.fixture
def proxy(settings):
    """PostgreSQL behind a proxy the test may freeze (``behind`` gives its URL)."""
    url = make_url(settings["database_url"])
    running = FreezableProxy((url.host or "127.0.0.1", url.port or 5432))
    yield running
    running.close()


def behind(proxy: FreezableProxy, settings: dict) -> str:
    """The test database's URL, through ``proxy``."""
    return make_url(settings["database_url"]).set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)


@pytest.fixture
def provider_nodes(tmp_path):
    """Start provider nodes: provider_nodes(environment, workers=1, options=(server options,));
    all stopped after the test."""
    started: list[ProviderNode] = []

    def start(environment: dict[str, str], *, workers: int = 1,
              options: tuple[str, ...] = ()) -> ProviderNode:
        node = ProviderNode(environment, tmp_path / f"node-{len(started) + 1}.log", workers=workers,
                            options=options)
        started.append(on_a_free_port(node))
        return node

    yield start
    for node in started:
        node.stop()

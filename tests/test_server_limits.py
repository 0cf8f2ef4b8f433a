"""Requests over the HTTP servers' own limits (a request line, a header field, the number of header
fields) are refused with a 4xx carrying the security headers, whoever refuses them: the provider's
input gate, or the reverse proxy in front, which adds them to the production server's own refusals
(SPEC §9), or the demo's server (Werkzeug's), which adds them to its own. The production
server's have no body: reached directly, they give a browser nothing to show."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from urllib.parse import urlencode

import pytest

from idp import create_app
from idp.web.headers import SECURITY_HEADERS
from tests.conftest import ROOT, free_port
from tests.servers import missing, node_environment, werkzeug_serving

pytestmark = pytest.mark.server

PATH = "/malakoff/.well-known/openid-configuration"


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def one(self, name: str) -> str:
        values = self.headers.get(name.lower(), [])
        assert len(values) == 1, (name, values, self.status)
        return values[0]

    @property
    def from_provider(self) -> bool:
        """The provider's own answers name their request (the server's and the proxy's do not)."""
        return "x-request-id" in self.headers

    @property
    def from_server(self) -> bool:
        """An answer of the HTTP server itself (granian): no body, no type, no request id."""
        return not self.from_provider and self.body == b"" and "content-type" not in self.headers


def send(port: int, request: bytes, context: ssl.SSLContext | None = None) -> Answer:
    """One request written as given, on its own connection; the answer as received."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") if context else raw as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, _, fields = head.partition(b"\r\n")
    parsed = BytesHeaderParser().parsebytes(fields)
    headers: dict[str, list[str]] = {}
    for name, value in parsed.items():
        headers.setdefault(name.lower(), []).append(value)
    return Answer(int(status_line.split()[1]), headers, body)


def get(port: int, target: str = PATH, fields: list[str] = (), *,
        context: ssl.SSLContext | None = None) -> Answer:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", *fields, "Connection: close", "", ""]
    return send(port, "\r\n".join(lines).encode("latin-1"), context)


def numbered(count: int) -> list[str]:
    return [f"X-Field-{number}: {number}" for number in range(count)]


OVERSIZED = {
    "request line of 10 000 bytes": lambda: (f"{PATH}?q={'a' * 10_000}", []),
    "request line just over 8 KiB": lambda: (f"{PATH}?q={'a' * 8_200}", []),
    "header field of 9 000 bytes": lambda: (PATH, [f"X-Huge: {'a' * 9_000}"]),
    "header field of 20 000 bytes": lambda: (PATH, [f"X-Huge: {'a' * 20_000}"]),
    "cookie of 12 000 bytes": lambda: (PATH, [f"Cookie: c={'a' * 12_000}"]),
    "200 header fields": lambda: (PATH, numbered(200)),
    "2 000 header fields": lambda: (PATH, numbered(2_000)),
}


def assert_refused_with_security_headers(answer: Answer, case: str) -> None:
    assert 400 <= answer.status < 500, (case, answer.status, answer.body[:200])
    for name, value in SECURITY_HEADERS:
        assert answer.one(name) == value, (case, name)
    assert answer.one("Cache-Control") == "no-store", case


@pytest.fixture
def node(settings, provider_nodes):
    """The provider under its production server, reached directly."""
    return provider_nodes(node_environment(settings, cookie_secure=False, trusted_proxies=1))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_the_provider_refuses_oversized_requests_with_the_security_headers(node):
    port = port_of(node.url)
    answers = {}
    for case, build in OVERSIZED.items():
        target, fields = build()
        answers[case] = get(port, target, fields)
    # The provider's gate answers what is over its limits, the server what it cannot hold: more
    # header fields than a hundred.
    for case, answer in answers.items():
        if case in ("200 header fields", "2 000 header fields"):
            assert answer.from_server and answer.status == 431, case
        else:
            assert answer.from_provider, case
            assert_refused_with_security_headers(answer, case)
            assert answer.status == (414 if "request line" in case else 431), case
    # The server's own refusals: a request target beyond what it parses, a request it cannot
    # read at all. No body, no type: nothing a browser could render or frame.
    refusals = [answers["200 header fields"], answers["2 000 header fields"],
                get(port, f"{PATH}?q={'a' * 70_000}"),
                send(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n")]
    assert [answer.status for answer in refusals] == [431, 431, 414, 400]
    assert all(answer.from_server for answer in refusals)
    # Within the limits, the provider answers, with each header once.
    fine = get(port, fields=numbered(40))
    assert fine.status == 200 and fine.from_provider
    for name, _value in SECURITY_HEADERS:
        fine.one(name)


def test_up_to_the_servers_own_limits_the_provider_answers_with_its_headers(node):
    """Each of the provider's limits sits below the server's: from just under the provider's
    limit to just under the server's, every request is answered by the provider, accepted or
    refused with the security headers, never refused bare by the server."""
    port = port_of(node.url)
    base = len(f"GET {PATH}?q= HTTP/1.1")
    # With Host and Connection: from 40 fields to the server's hundred.
    counts = [(PATH, numbered(count - 2)) for count in (40, 63, 64, 65, 66, 80, 99, 100)]
    # Fields of 8 KiB at most each, from 48 KiB in all to 400 KiB, within the server's buffer.
    heads = [(PATH, [f"X-Part-{number}: {'a' * 8_000}" for number in range(parts)])
             for parts in (6, 8, 9, 20, 40, 50)]
    # Targets from just under the provider's 8 KiB to just under the server's 65,534 bytes.
    targets = [(f"{PATH}?q={'a' * (length - base)}", [])
               for length in (8_000, 8_300, 20_000, 65_000)]
    statuses = set()
    for target, fields in counts + heads + targets:
        answer = get(port, target, fields)
        case = (len(target), len(fields), sum(map(len, fields)))
        assert answer.from_provider, case
        if answer.status >= 400:
            assert_refused_with_security_headers(answer, case)
        statuses.add(answer.status)
    assert statuses == {200, 414, 431}
    # Past the server's limits, its own bare refusals.
    assert get(port, fields=numbered(99)).from_server
    assert get(port, fields=[f"X-Part-{number}: {'a' * 8_000}" for number in range(75)]).from_server


def test_the_demo_server_refuses_what_it_cannot_read_with_the_security_headers(settings):
    # `idp demo` serves the provider with Werkzeug's server, which refuses a request line over
    # 64 KiB, a header field as long, or more than a hundred fields before the provider sees them.
    with werkzeug_serving(create_app(settings)) as url:
        port = port_of(url)
        answers = {
            "request line of 200 000 bytes": get(port, f"{PATH}?q={'a' * 200_000}"),
            "header field of 70 000 bytes": get(port, fields=[f"X-Huge: {'a' * 70_000}"]),
            "200 header fields": get(port, fields=numbered(200)),
        }
    assert {case: answer.status for case, answer in answers.items()} == {
        "request line of 200 000 bytes": 414, "header field of 70 000 bytes": 431,
        "200 header fields": 431}
    for case, answer in answers.items():
        assert not answer.from_provider, case
        assert_refused_with_security_headers(answer, case)


NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if shutil.which(path)), None)


@dataclass
class Proxy:
    http_port: int
    https_port: int
    context: ssl.SSLContext


@pytest.fixture
def proxy(node, certificate, tmp_path):
    """The reverse proxy's configuration (config/nginx/nginx.conf) in front of the node, on free
    ports with a local certificate."""
    if NGINX is None:
        missing("nginx is not installed (Debian's nginx package, which .ci/run installs)")
    http_port, https_port = free_port(), free_port()
    config = (ROOT / "config" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    upstream = f"server 127.0.0.1:{port_of(node.url)} max_fails=1 fail_timeout=10s;"
    config = re.sub(r"server idp-1:8000 [^;]*;\s*server idp-2:8000 [^;]*;", upstream, config)
    config = config.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    config = config.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    config = config.replace("/etc/nginx/tls/fullchain.pem", str(certificate.cert_file))
    config = config.replace("/etc/nginx/tls/privkey.pem", str(certificate.key_file))
    config = config.replace("pid /tmp/nginx.pid;", f"pid {tmp_path / 'nginx.pid'};")
    temporary = "".join(f"    {kind}_temp_path {tmp_path / kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = config.replace("http {\n", "http {\n" + temporary, 1)
    assert upstream in config and str(https_port) in config
    (tmp_path / "nginx.conf").write_text(config, encoding="utf-8")
    log = tmp_path / "nginx.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the system's nginx on a file of ours
            [NGINX, "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf"),
             "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not listening(https_port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"nginx did not start: {log.read_text()}")
        time.sleep(0.05)
    yield Proxy(http_port, https_port, certificate.client_context())
    process.terminate()
    process.wait(timeout=10)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_proxy_refuses_oversized_requests_itself_with_the_security_headers(proxy):
    answers = {}
    for case, build in OVERSIZED.items():
        target, fields = build()
        answers[case] = answer = get(proxy.https_port, target, fields, context=proxy.context)
        assert_refused_with_security_headers(answer, case)
    for case in ("request line of 10 000 bytes", "request line just over 8 KiB",
                 "header field of 9 000 bytes", "header field of 20 000 bytes",
                 "cookie of 12 000 bytes"):
        assert not answers[case].from_provider, case
    assert answers["request line of 10 000 bytes"].status == 414
    # The proxy does not count header fields: the server does, and the proxy adds the headers.
    assert answers["200 header fields"].status == 431 and not answers["200 header fields"].from_provider
    too_big = send(proxy.https_port, (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\n"
                                      "Content-Length: 2000000\r\nConnection: close\r\n\r\n"
                                      ).encode(), proxy.context)
    assert too_big.status == 413 and not too_big.from_provider
    assert_refused_with_security_headers(too_big, "a body over 1 MiB")
    # Over plain HTTP, the redirect to HTTPS and the refusals carry them too.
    redirect = get(proxy.http_port)
    assert redirect.status == 308
    for name, value in SECURITY_HEADERS:
        assert redirect.one(name) == value
    assert_refused_with_security_headers(
        get(proxy.http_port, f"{PATH}?q={'a' * 10_000}"), "plain HTTP, long request line")
    # The provider's answers pass through with their own headers, none added twice.
    fine = get(proxy.https_port, context=proxy.context)
    assert fine.status == 200 and fine.from_provider
    for name, value in SECURITY_HEADERS:
        assert fine.one(name) == value
    assert fine.one("Cache-Control").startswith("public"), "the discovery document stays cacheable"
    assert "pragma" not in fine.headers


def test_the_proxy_answers_for_a_node_it_cannot_reach_with_the_security_headers(proxy, node):
    node.stop()
    answer = get(proxy.https_port, context=proxy.context)
    assert answer.status == 502
    for name, value in SECURITY_HEADERS:
        assert answer.one(name) == value
    assert answer.one("Cache-Control") == "no-store"


def test_whatever_the_proxy_lets_through_reaches_the_provider(proxy):
    """At every size around the proxy's limits (a request line or a header field of 8 KiB, about
    a thousand header fields), a request is refused by the proxy, or answered by the provider, or
    (for the number of header fields, which the proxy does not count) refused by the server, and
    every refusal carries the security headers."""
    base = len(f"GET {PATH}?q= HTTP/1.1")
    lines = [(f"{PATH}?q={'a' * (length - base)}", []) for length in range(8_180, 8_200)]
    fields = [(PATH, [f"X-Huge: {'a' * (length - len('X-Huge: '))}"])
              for length in range(8_180, 8_200)]
    counts = [(PATH, [f"X{number}:" for number in range(count)]) for count in range(980, 1_020)]
    statuses = set()
    for target, extra in lines + fields + counts:
        answer = get(proxy.https_port, target, extra, context=proxy.context)
        assert answer.status < 500, (len(target), len(extra))
        if answer.status >= 400:
            assert_refused_with_security_headers(answer, (len(target), len(extra)))
        statuses.add((answer.status, answer.from_provider))
    # Each boundary was crossed: answered by the provider below it, refused above.
    assert {(200, True), (431, False), (414, False), (400, False)} <= statuses


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hostile_requests(rp) -> dict[str, bytes]:
    """Requests that once caused server errors, each as the bytes a client would send."""
    basic = "Basic " + base64.b64encode(f"{rp.client_id}:{rp.secret}".encode()).decode()
    params = {"response_type": "code", "client_id": rp.client_id, "scope": "openid",
              "redirect_uri": rp.redirect_uris[0], "state": "s", "code_challenge": "c" * 43,
              "code_challenge_method": "S256"}
    hint = ".".join((_b64(json.dumps({"alg": "RS256", "kid": "clé"}).encode()),
                     _b64(b'{"sub": "x"}'), _b64(b"signature")))

    def request(method: str, target: str, fields: list[str] = (), body: bytes = b"",
                host: str = "localhost") -> bytes:
        head = [f"{method} {target} HTTP/1.1", f"Host: {host}", *fields, "Connection: close"]
        if method == "POST":
            head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body

    def authorize(**changes) -> bytes:
        return request("GET", "/malakoff/authorize?" + urlencode({**params, **changes}))

    form = ["Content-Type: application/x-www-form-urlencoded"]
    refresh = urlencode({"grant_type": "refresh_token", "refresh_token": "x"}).encode()
    cases = {f"unregistered redirect_uri holding {name}": authorize(
        redirect_uri=f"https://elsewhere.example/{text}")
        for name, text in [("a quote", '"'), ("a backslash", "\\"), ("non-ASCII", "é"),
                           ("a right-to-left override", "\u202e"), ("a zero-width space", "\u200b")]}
    cases |= {
        "id_token_hint whose kid is not ASCII": request(
            "GET", "/malakoff/logout?" + urlencode({"id_token_hint": hint})),
        "NUL in client_id at /authorize": authorize(client_id="a\x00b"),
        "NUL in client_id at /token": request(
            "POST", "/malakoff/token", form, refresh + b"&client_id=a%00b"),
        "NUL in Basic credentials": request("POST", "/malakoff/token", [
            *form, "Authorization: Basic " + base64.b64encode(b"a\x00b:secret").decode()], refresh),
        "Basic credentials that are not UTF-8": request("POST", "/malakoff/token", [
            *form, "Authorization: Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()], refresh),
        "Basic credentials sent twice": request("POST", "/malakoff/token", [
            *form, f"Authorization: {basic}", f"Authorization: {basic}"], refresh),
        "a Host of another name on plain HTTP": request("GET", "/malakoff/login",
                                                          host="idp.example.org"),
        "a nonce of 501 characters": authorize(nonce="n" * 501),
        "a JSON body 900 deep": request("POST", "/malakoff/login", [
            "Content-Type: application/json", "X-CSRFToken: x"], b"[" * 900 + b"]" * 900),
        "NUL in a sign-in identifier": request(
            "POST", "/malakoff/login", form, b"identifier=a%00b&password=x"),
        "header values that are not ASCII": request("POST", "/malakoff/token", [
            *form, "Authorization: Basic \u00e9\u00ff", "Cookie: s=\u00e9t\u00e9"], refresh),
        "a path that is not UTF-8": request("GET", "/malakoff/%FF%C3login"),
    }
    return cases


def test_hostile_requests_get_no_server_error_under_the_production_server(node, rp):
    port = port_of(node.url)
    for case, raw in hostile_requests(rp).items():
        answer = send(port, raw)
        assert 300 <= answer.status < 500, (case, answer.status, answer.body[:300])
        for name, value in SECURITY_HEADERS:
            assert answer.one(name) == value, (case, name)
        assert b"Traceback" not in answer.body, case
    nonce = send(port, hostile_requests(rp)["a nonce of 501 characters"])
    assert nonce.status in (302, 303) and "error=invalid_request" in nonce.one("Location")
    errors = [line for line in node.log_lines() if '"level": "ERROR"' in line]
    assert not errors, errors

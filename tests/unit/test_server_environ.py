"""The environ the production server's bridge gives the provider for an RSGI request."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import TypeVar

import pytest

from idp import logs
from idp.web.server import WsgiBridge, wsgi_environ
from idp.web.transactions import CLIENT_GONE

T = TypeVar("T")


class Headers:
    """RSGI's header fields: every field in the order received, repeated ones included."""

    def __init__(self, fields: list[tuple[str, str]]):
        self.fields = fields

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)


def scope(fields: list[tuple[str, str]], path: str = "/malakoff/token") -> SimpleNamespace:
    return SimpleNamespace(server="127.0.0.1:8000", client="[::1]:51234", method="POST", path=path,
                           query_string="a=1", http_version="1.1", scheme="http", headers=Headers(fields))


def environ(fields: list[tuple[str, str]], **options) -> dict:
    return wsgi_environ(scope(fields, **options), threading.Event())


def test_repeated_fields_are_one_list_and_cookies_one_cookie_header():
    made = environ([("x-forwarded-for", "203.0.113.7"), ("cookie", "a=1"), ("x-forwarded-for", "10.0.0.1"),
                    ("cookie", "b=2"), ("accept", "*/*")])
    assert made["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 10.0.0.1"
    assert made["HTTP_COOKIE"] == "a=1; b=2"
    assert made["HTTP_ACCEPT"] == "*/*"


def test_the_body_fields_are_taken_once_the_first_time():
    made = environ([("content-type", "application/x-www-form-urlencoded"), ("content-length", "12"),
                    ("content-type", "text/plain"), ("content-length", "99")])
    assert made["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert made["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in made and "HTTP_CONTENT_LENGTH" not in made


def test_the_request_line_and_the_peers():
    made = environ([("host", "localhost")], path="/malakoff/activate/é")
    assert made["REQUEST_METHOD"] == "POST"
    # PEP 3333: the path as bytes, each read as one latin-1 character.
    assert made["PATH_INFO"] == "/malakoff/activate/é".encode().decode("latin-1")
    assert made["QUERY_STRING"] == "a=1"
    assert (made["SERVER_NAME"], made["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert (made["REMOTE_ADDR"], made["REMOTE_PORT"]) == ("::1", "51234")
    assert made["HTTP_HOST"] == "localhost"
    assert made["wsgi.url_scheme"] == "http"
    assert isinstance(made[CLIENT_GONE], threading.Event)


class Protocol:
    """RSGI's protocol of one request whose body comes in ``chunks``, each once its event is set."""

    def __init__(self, chunks: list[tuple[bytes, threading.Event]]):
        self.chunks = chunks
        self.answered: tuple[int, list, bytes] | None = None
        self.stopped_reading = False

    async def __aiter__(self):
        try:
            for chunk, sent in self.chunks:
                while not sent.is_set():
                    await asyncio.sleep(0.01)
                yield chunk
        except asyncio.CancelledError:
            self.stopped_reading = True
            raise

    def client_disconnect(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    def response_bytes(self, status: int, headers: list, body: bytes) -> None:
        self.answered = (status, headers, body)


def alone(work: Callable[[], T]) -> T:
    """``work`` run in a thread of its own, where no event loop runs (one may be running in this
    thread: the browser tests' driver). What it raised is raised here."""
    done: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as error:  # handed to the test's thread
            failed.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if failed:
        raise failed[0]
    assert done, "still running after 30 s"
    return done[0]


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.input"].read()]


def serve(app, protocol: Protocol, length: int) -> None:
    bridge = WsgiBridge(app, threads=1, max_body=1024)
    alone(lambda: asyncio.run(bridge.__rsgi__(scope([("content-length", str(length))]), protocol)))


def test_the_application_waits_for_the_part_of_the_body_still_to_come():
    first, rest = threading.Event(), threading.Event()
    first.set()
    threading.Timer(0.2, rest.set).start()
    protocol = Protocol([(b"grant_type=", first), (b"refresh_token", rest)])
    serve(echo, protocol, 24)
    assert protocol.answered == (200, [("Content-Type", "text/plain")], b"grant_type=refresh_token")


def test_a_body_slow_to_come_holds_no_thread():
    """The body is read in the event loop before its request takes a thread: with one thread,
    a request without a body is answered while another's body is still coming."""
    rest = threading.Event()
    slow = Protocol([(b"grant_type=", rest)])
    quick = Protocol([])
    bridge = WsgiBridge(echo, threads=1, max_body=1024)

    async def run() -> None:
        waiting = asyncio.create_task(bridge.__rsgi__(scope([("content-length", "11")]), slow))
        await asyncio.sleep(0.1)
        await bridge.__rsgi__(scope([]), quick)
        assert quick.answered is not None and slow.answered is None
        rest.set()
        await waiting

    alone(lambda: asyncio.run(run()))
    assert slow.answered == (200, [("Content-Type", "text/plain")], b"grant_type=")


def test_a_body_is_read_up_to_one_byte_past_the_limit():
    """The application refuses a longer body (413) without the worker holding it: reading
    stops once past the limit, and what was read is all it gets."""
    sent = threading.Event()
    sent.set()
    protocol = Protocol([(b"a" * 600, sent), (b"b" * 600, sent), (b"never", threading.Event())])
    serve(echo, protocol, 1800)
    assert protocol.answered is not None
    assert protocol.answered[2] == b"a" * 600 + b"b" * 425


def test_a_body_whose_client_left_halfway_is_not_answered_nor_reported():
    class Leaving(Protocol):
        async def __aiter__(self):
            yield b"grant"
            raise ConnectionResetError

    ran: list[dict] = []

    def app(environ, start_response):
        ran.append(environ)
        start_response("200 OK", [])
        return [b""]

    reported: list[dict] = []
    leaving = Leaving([])

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reported.append(context))
        bridge = WsgiBridge(app, threads=1, max_body=1024)
        await bridge.__rsgi__(scope([("content-length", "9")]), leaving)
        gc.collect()
        await asyncio.sleep(0)

    alone(lambda: asyncio.run(run()))
    gc.collect()
    assert reported == [] and ran == [] and leaving.answered is None


def test_an_application_that_raises_fails_its_request_and_its_thread_serves_the_next():
    """What the application raises in its thread is raised where the request awaits it (the
    server answers 500); the thread, the only one, then runs the next request."""
    calls: list[str] = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        if len(calls) == 1:
            raise LookupError("the application failed")
        return echo(environ, start_response)

    bridge = WsgiBridge(app, threads=1, max_body=1024)
    failing, next_one = Protocol([]), Protocol([])

    async def run() -> None:
        with pytest.raises(LookupError, match="the application failed"):
            await bridge.__rsgi__(scope([]), failing)
        await asyncio.wait_for(bridge.__rsgi__(scope([]), next_one), 10)

    alone(lambda: asyncio.run(run()))
    assert failing.answered is None and len(calls) == 2
    assert next_one.answered == (200, [("Content-Type", "text/plain")], b"")


def test_a_thread_whose_event_loop_closed_meanwhile_serves_the_next_request():
    """An answer with no loop left to take it (the loop that handed the request over has
    closed) is dropped; the thread, the only one, runs the next request."""
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            release.wait(10)
        return echo(environ, start_response)

    bridge = WsgiBridge(app, threads=1, max_body=1024)
    first, second = Protocol([]), Protocol([])

    async def leave() -> None:
        waiting = asyncio.create_task(bridge.__rsgi__(scope([], path="/slow"), first))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the request is in the thread; the loop then closes

    alone(lambda: asyncio.run(leave()))
    release.set()

    async def next_request() -> None:
        await asyncio.wait_for(bridge.__rsgi__(scope([]), second), 10)

    alone(lambda: asyncio.run(next_request()))
    assert first.answered is None
    assert second.answered == (200, [("Content-Type", "text/plain")], b"")


def test_a_worker_ending_writes_the_request_lines_still_waiting(monkeypatch):
    """granian calls ``__rsgi_del__`` once a worker's requests are answered, as it ends: the
    lines its writer had not yet written are written then, not lost with the process."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    lines = logs.RequestLines(interval=3600)  # its thread would not write them for an hour
    monkeypatch.setattr(logs, "REQUEST_LINES", lines)
    fields = {"request_id": "r", "tenant": "malakoff", "method": "POST", "path": "/malakoff/revoke"}
    lines.add(handler, (0.0, "oidc_api.revoke", 200, 0.001, fields))
    assert stream.getvalue() == ""
    WsgiBridge(lambda _environ, _start: [b""], threads=1, max_body=1024).__rsgi_del__(None)
    assert json.loads(stream.getvalue())["message"] == "POST /malakoff/revoke 200"

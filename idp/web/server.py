"""The provider's production HTTP server: granian, an HTTP/1.1 server written in Rust, runs the
WSGI application in worker processes (the Docker image's command).

    python -m idp.web.server [--bind 0.0.0.0:8000] [--workers 2] [--threads 4]

Nodes are stateless (state lives in PostgreSQL and Redis), so any number of workers and
nodes can serve any step of a sign-in. Connections are kept alive between requests (RFC 9112
9.3); the server parses requests and writes answers outside the Python interpreter.

What the server guarantees, and how:

- SIGTERM (``docker stop``, a rolling deploy) stops accepting connections and lets each
  worker finish the requests it has, for up to ``--graceful-timeout`` seconds; SIGHUP
  replaces the workers one by one the same way (a graceful restart).
- A worker that dies is replaced; ``--workers-lifetime`` replaces each worker gracefully
  after that many seconds.
- A request running longer than ``--timeout`` seconds ends its worker, which is replaced
  (``Watchdog``): the provider's own deadline (``IDP_REQUEST_DEADLINE_SECONDS``, at most 60)
  and the bounds on PostgreSQL come first, so only a request stuck elsewhere meets it.
- Every log line is one JSON object on standard output (idp.logs), the server's own
  messages included; the provider logs each request once, so the server's access log is off.
  A worker writes its requests' lines every 20 ms, together (``logs.REQUEST_LINES``), and
  those still waiting when it ends or its watchdog ends it.
- ``PROMETHEUS_MULTIPROC_DIR``: each worker keeps its counters there and a scrape of any
  worker adds them all up (idp.metrics); the files of a previous run are removed at start.
- Each worker gives argon2's memory back after each hash (``release_large_blocks``), in huge
  pages where the kernel offers them (``huge_pages_environment``); password checks share one
  block of it, kept while they keep coming (idp.accounts.hash_memory).

The server speaks RSGI, granian's own interface, to ``WsgiBridge``, which runs the WSGI
application in a pool of ``--threads`` threads, from an event loop of uvloop's (libuv: each
hand-over to a thread and back costs 3.4 µs of CPU there, 8.4 in asyncio's own). RSGI tells
when a client closes its connection, and the bridge passes that on in the environ
(``CLIENT_GONE``), so a request whose client has left commits nothing, however soon
(idp.web.transactions). Granian's WSGI interface does not tell.

The server answers some requests itself, before the provider sees them: a request target
over 65,534 bytes (414), a request head over its buffer (some 400 KiB and more) or with more than a
hundred fields (431), a request it cannot parse (400). Those answers have no body and no
security headers. The provider's own limits sit below these (idp.web.gate: a target of 8 KiB,
64 fields, 64 KiB of fields), so it answers whatever is oversized short of them, with its
headers; the reverse proxy in front adds the headers to the server's answers
(config/nginx/nginx.conf).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import io
import ipaddress
import logging
import os
import platform
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from granian import Granian
from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server.common import AbstractServer

from idp import create_app, logs
from idp.config import ConfigError, load_settings
from idp.tenancy import tenants_of
from idp.web.gate import has_body
from idp.web.transactions import CLIENT_GONE

log = logging.getLogger(__name__)

# Argon2id allocates its whole memory cost (19 MiB) for each hash and frees it after. glibc then
# serves the next block of that size from the heap (its mmap threshold rises to the largest block
# freed), and the heap does not give it back: every worker would keep ~20 MiB it uses for 30 ms
# per sign-in. A fixed threshold keeps such blocks in their own mappings, returned at each free.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024

# glibc's malloc asks the kernel for transparent huge pages (madvise) for what it maps: the 19
# MiB argon2id maps for each hash are then faulted in 2 MiB at a time rather than 4 KiB, which
# spares each verify some 4,600 page faults and 8–10 ms of kernel time (a third of its CPU), and
# the memory still goes back at each free. glibc reads its tunables when a process starts only.
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"

# How the server process tells its workers the request time limit and their number of threads
# (they may be spawned afresh).
TIMEOUT_VARIABLE = "WEB_TIMEOUT"
THREADS_VARIABLE = "WEB_THREADS"
# The server's name in its messages (the command that starts it).
PROG = "python -m idp.web.server"


def release_large_blocks() -> None:
    libc = ctypes.util.find_library("c")
    if libc:
        mallopt = getattr(ctypes.CDLL(libc), "mallopt", None)  # glibc's; absent elsewhere
        if mallopt is not None:
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def huge_pages_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment the server must start again in for malloc to use huge pages (glibc
    only; other tunables kept), or None when it already has it or is not on glibc."""
    if platform.libc_ver()[0] != "glibc":
        return None
    tunables = environ.get(TUNABLES_VARIABLE, "")
    if "glibc.malloc.hugetlb=" in tunables:
        return None
    return {**environ, TUNABLES_VARIABLE: ":".join(filter(None, (tunables, HUGE_PAGES_TUNABLE)))}


def clear_metrics_directory() -> None:
    """Start the workers' metrics directory empty: files of a previous run would add old counts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


class Watchdog:
    """The WSGI application, whose worker process ends when one of its requests has run for
    more than ``timeout`` seconds: the server then starts a new worker, so that a request stuck
    for good does not take a worker away for good."""

    def __init__(self, app: Callable[..., Iterable[bytes]], timeout: float):
        self.app = app
        self.timeout = timeout
        self.started: dict[int, float] = {}  # thread -> when its request started
        threading.Thread(target=self._watch, name="request-watchdog", daemon=True).start()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        thread = threading.get_ident()
        self.started[thread] = time.monotonic()
        try:
            return self.app(environ, start_response)
        finally:
            del self.started[thread]

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            oldest = min(self.started.values(), default=None)
            if oldest is not None and time.monotonic() - oldest > self.timeout:
                log.error("request running for more than %ss: worker %s ends", self.timeout, os.getpid())
                logs.REQUEST_LINES.flush(timeout=1.0)  # the lines of the requests answered until now
                os.kill(os.getpid(), signal.SIGKILL)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# A request's answer: its status, header fields and body.
Answer = tuple[int, list[tuple[str, str]], bytes]


class WsgiBridge:
    """An RSGI application that runs a WSGI application in a pool of threads, and tells it in
    the environ (``CLIENT_GONE``, a ``threading.Event``) once the client has closed its
    connection. The request body is read in the event loop as it comes, up to one byte past
    ``max_body`` (the provider takes forms, not uploads: it refuses a longer body, which no
    worker holds whole), before the request takes a thread: a body slow to come holds none.
    The answer is made whole before it is sent. A request the application answers from memory
    (``from_memory``: the metadata documents) is run in the event loop itself: it waits on
    nothing, and a hop to a thread would cost more than it."""

    def __init__(self, app: WsgiApp, threads: int, max_body: int,
                 from_memory: Callable[[dict[str, Any]], bool] | None = None):
        self.app = app
        self.threads = Threads(threads)
        self.max_body = max_body
        self.from_memory = from_memory

    def __rsgi_del__(self, _loop: Any) -> None:
        """The worker is ending, its requests answered: the lines waiting are written."""
        logs.REQUEST_LINES.flush()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        loop = asyncio.get_running_loop()
        gone = threading.Event()
        environ = wsgi_environ(scope, gone)
        if self.from_memory is not None and self.from_memory(environ):
            # It waits on nothing and has no body: answered here, without a thread (a metadata
            # document is read even while every thread is busy).
            status, headers, answer = run_wsgi(self.app, environ)
        else:
            if has_body(environ):
                try:
                    environ["wsgi.input"] = io.BytesIO(await _read(protocol, self.max_body))
                except (RuntimeError, OSError):  # granian's RSGIProtocolClosed, a reset: the
                    return  # client left halfway, no one to answer
            # Set once the client has gone; a callback, which costs less than a task awaiting it.
            disconnected = protocol.client_disconnect()
            disconnected.add_done_callback(lambda _done: gone.set())
            try:
                status, headers, answer = await self.threads.run(loop, self.app, environ)
            finally:
                disconnected.cancel()
        protocol.response_bytes(status, headers, answer)


class Threads:
    """``count`` threads that run WSGI requests handed over from the event loop and hand their
    answers back to it.

    Leaner than ``loop.run_in_executor``: a queue (``SimpleQueue``, in C) to the threads and
    one call back into the loop, without the executor's own future chained to the loop's:
    7.5 µs of CPU a round trip rather than 23 (bench/RESULTS.md)."""

    def __init__(self, count: int):
        self.tasks: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Answer],
                                            WsgiApp, dict[str, Any]]] = queue.SimpleQueue()
        for number in range(count):
            threading.Thread(target=self._work, name=f"request_{number}", daemon=True).start()

    def run(self, loop: asyncio.AbstractEventLoop, app: WsgiApp,
            environ: dict[str, Any]) -> asyncio.Future[Answer]:
        """The answer of ``app`` to ``environ``, once a thread has run it."""
        answer = loop.create_future()
        self.tasks.put((loop, answer, app, environ))
        return answer

    def _work(self) -> None:
        while True:
            loop, answer, app, environ = self.tasks.get()
            settle: Callable[[Any], None]
            outcome: Answer | BaseException
            try:
                settle, outcome = answer.set_result, run_wsgi(app, environ)
            except BaseException as raised:  # raised again where the request awaits it
                settle, outcome = answer.set_exception, raised
            try:
                loop.call_soon_threadsafe(_unless_cancelled, answer, settle, outcome)
            except RuntimeError:  # the loop has closed meanwhile: no one awaits the answer
                continue


def _unless_cancelled(answer: asyncio.Future[Answer], settle: Callable[[Any], None], outcome: Any) -> None:
    if not answer.cancelled():  # the request was cancelled meanwhile (the server stopping)
        settle(outcome)


async def _read(protocol: Any, limit: int) -> bytes:
    """The request body as it comes, up to one byte past ``limit``: enough for the application
    to refuse a longer one (413) without the worker holding it whole."""
    parts: list[bytes] = []
    size = 0
    async for chunk in protocol:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(parts)[:limit + 1]


def wsgi_environ(scope: Any, gone: threading.Event) -> dict[str, Any]:
    """PEP 3333's environ for an RSGI request (its path comes percent-decoded, as text), with an
    empty body (the bridge gives the body of a request that has one)."""
    server_host, _, server_port = scope.server.rpartition(":")
    client_host, _, client_port = scope.client.rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method, "SCRIPT_NAME": "",
        "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host, "SERVER_PORT": server_port,
        "REMOTE_ADDR": client_host.strip("[]"), "REMOTE_PORT": client_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.scheme, "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.input_terminated": True,
        CLIENT_GONE: gone,
    }
    for name, value in scope.headers.items():  # in the order received, repeated fields included
        if name in ("content-type", "content-length"):
            environ.setdefault(name.upper().replace("-", "_"), value)
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            # RFC 9110 5.3: repeated fields are one list, except cookies (RFC 6265 5.4).
            environ[key] += ("; " if name == "cookie" else ", ") + value
        else:
            environ[key] = value
    return environ


def run_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """The answer of the WSGI application ``app`` to ``environ``, made whole."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], _exc_info: Any = None) -> None:
        started[:] = [int(status.split(" ", 1)[0]), headers]

    iterable = app(environ, start_response)
    try:
        answer = b"".join(iterable)
    finally:
        if hasattr(iterable, "close"):
            iterable.close()
    return started[0], started[1], answer


def worker_app() -> WsgiBridge:
    """The application of one worker process (the server calls it in each worker)."""
    release_large_blocks()
    logs.gather_only_what_lines_hold()
    app = create_app()
    return WsgiBridge(Watchdog(app, float(os.environ[TIMEOUT_VARIABLE])),
                      int(os.environ[THREADS_VARIABLE]), max_body=app.config["MAX_CONTENT_LENGTH"],
                      from_memory=app.from_memory)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])

    def number(variable: str, default: int) -> int:
        """A whole number from the environment, or the default when it is not set."""
        value = os.environ.get(variable)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            parser.error(f"{variable} must be a whole number, not {value!r}")

    parser.add_argument("--bind", default="0.0.0.0:8000",
                        help="IP address and port to listen on (default 0.0.0.0:8000; IPv6 as "
                        "[::]:8000)")
    parser.add_argument("--workers", type=int, default=number("WEB_CONCURRENCY", 2),
                        help="worker processes (WEB_CONCURRENCY, default 2)")
    # Workers for the cores, and four threads in each: while some wait on PostgreSQL or Redis (or
    # on the outbox, for a code's page) another runs, so the core is not left idle at each round
    # trip (a password's hash keeps the interpreter: idp.accounts.hash_memory). Four rather than
    # two cost less CPU a request on every endpoint, the event loop handing over several answers
    # at each wake-up; eight, no less than four (bench/RESULTS.md).
    parser.add_argument("--threads", type=int, default=number(THREADS_VARIABLE, 4),
                        help="threads running requests in each worker (WEB_THREADS, default 4)")
    parser.add_argument("--timeout", type=int, default=number(TIMEOUT_VARIABLE, 30),
                        help="seconds a request may run before its worker is replaced "
                        "(WEB_TIMEOUT, default 30)")
    parser.add_argument("--graceful-timeout", type=int,
                        default=number("WEB_GRACEFUL_TIMEOUT", 30),
                        help="seconds workers have to finish their requests when stopped "
                        "(WEB_GRACEFUL_TIMEOUT, default 30)")
    parser.add_argument("--workers-lifetime", type=int, default=number("WEB_WORKERS_LIFETIME", 0),
                        help="seconds after which each worker is replaced gracefully "
                        "(WEB_WORKERS_LIFETIME, default 0: never)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=os.environ.get("WEB_LOG_LEVEL", "info"),
                        help="the server's own messages (WEB_LOG_LEVEL, default info)")
    options = parser.parse_args(argv)
    host, _, port = options.bind.rpartition(":")
    try:
        options.host = str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
    except ValueError:
        parser.error(f"--bind takes an IP address and a port, as 0.0.0.0:8000 or [::]:8000, "
                     f"not {options.bind!r}")
    if not port.isdigit() or int(port) > 65535:
        parser.error(f"--bind: the port is a number from 0 to 65535, not {port!r}")
    options.port = int(port)
    if min(options.workers, options.threads, options.timeout, options.graceful_timeout) < 1:
        parser.error("--workers, --threads, --timeout and --graceful-timeout must be at least 1")
    if 0 < options.workers_lifetime < 60:
        parser.error("--workers-lifetime: at least 60 seconds (or 0: never)")
    return options


def logging_config(level: str) -> dict:
    """JSON lines on standard output for the server's messages and the provider's (idp.logs).
    The provider logs each request once, with its request id: no access log of the server's."""
    config = logs.dict_config(level.upper(), stream="ext://sys.stdout")
    config["loggers"] |= {"_granian": {"level": level.upper()},
                          "granian.access": {"level": "WARNING", "handlers": [], "propagate": False}}
    return config


def server(options: argparse.Namespace) -> AbstractServer[Any]:
    return Granian(
        "idp.web.server:worker_app", factory=True, interface=Interfaces.RSGI,
        address=options.host, port=options.port, workers=options.workers,
        websockets=False, loop=Loops.uvloop,
        log_level=LogLevels(options.log_level), log_dictconfig=logging_config(options.log_level),
        log_access=False,
        respawn_failed_workers=True, workers_kill_timeout=options.graceful_timeout,
        workers_lifetime=options.workers_lifetime or None,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    environment = huge_pages_environment(os.environ)
    if environment is not None:
        # The same command again, in the same process (its id, its signals), with the tunable.
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)  # noqa: S606
    try:
        # Each worker builds the provider; a setting it cannot run with is said here, once, rather
        # than as each worker's traceback, respawned in a loop.
        tenants_of(load_settings())
    except ConfigError as error:
        sys.exit(f"{PROG}: error: configuration: {error}")
    os.environ[TIMEOUT_VARIABLE] = str(options.timeout)
    os.environ[THREADS_VARIABLE] = str(options.threads)
    refused = unlistenable(options.host, options.port)
    if refused is not None:
        sys.exit(f"{PROG}: error: cannot listen on {options.bind}: {refused}")
    clear_metrics_directory()
    server(options).serve()


def unlistenable(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host``:``port`` (taken, not this machine's address,
    a privileged port), or None: said by the command, rather than as the server's traceback."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError as error:
            return error.strerror or str(error)
    return None


if __name__ == "__main__":
    main()

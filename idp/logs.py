"""Structured logs: one JSON object per line, with the request they belong to.

Every record logged while a request is served carries its request id, tenant,
method and path; the request itself is logged once, when answered, with its
status and duration (``log_requests``). What never goes in a log: passwords,
one-time codes, tokens, links, cookies, query strings (an authorization
request's ``login_hint`` is an email or a member number) and NIRs. Paths are
logged with their secret segments (activation and reset links) replaced.

Those are found by their shape (``redact``), not by the route that matched: a
mistyped link (a trailing slash, a 404) carries the same token. Every message
formatted here goes through it too, and so do the request lines werkzeug's
server logs (the demo), which carry whole URLs with their query strings.

The production server installs ``JsonFormatter`` (``idp.web.server``); ``idp outbox work``
through ``configure``.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import logging.config
import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request, request_finished, request_started
from werkzeug.wrappers import Response

from idp import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# What a trusted proxy may send as a request id (nginx's $request_id is 32 hex digits).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# URL parts that are secrets (single-use links): logged as this placeholder.
SECRET_VIEW_ARGS = ("token",)
REDACTED = "[redacted]"
# The segment after a single-use link's path (/activate/<token>, /reset-password/<token>),
# whatever follows it.
_LINK_TOKEN = re.compile(r"(/(?:activate|reset-password)/)[^/?#\s\"']+")
# Values of parameters that carry codes, tokens, hints and secrets (code=, token=,
# refresh_token=, id_token_hint=, client_secret=, login_hint=, a pushed request's
# request_uri=…) wherever they appear.
_SECRET_PARAMETER = re.compile(
    r"(?<![A-Za-z0-9_])((?:code|token|[a-z_]*_token|[a-z_]*_token_hint|[a-z_]*_secret|login_hint"
    r"|code_verifier|request_uri)=)[^&\s\"';,]+", re.IGNORECASE)
# The query string of an HTTP request line, as werkzeug logs it: "GET /path?query HTTP/1.1"
# (at a terminal, in colour: an ANSI sequence before the method).
_REQUEST_LINE_QUERY = re.compile(r'("(?:\x1b\[[0-9;]*m)?[A-Z]+ [^ ?"]*)\?[^ "]*( HTTP/)')
# Libraries that log secrets below these levels (Authlib logs every token it issues at
# DEBUG): they stay at these levels whatever the provider's own level is.
LIBRARY_LEVELS = {"authlib": "INFO"}
# Fields a log call may add with ``extra=``.
EXTRA_FIELDS = ("status", "duration_ms", "endpoint")
# The record attribute holding the fields of the request a request's line logs.
REQUEST_FIELDS = "request_fields"

log = logging.getLogger("idp.request")


def request_fields() -> dict[str, str | None]:
    """The current request's id, tenant, method and path (no query string, no secret segment)."""
    if not has_request_context():
        return {}
    tenant = g.get("tenant")
    return {
        "request_id": g.get("request_id"),
        "tenant": tenant.slug if tenant is not None else None,
        "method": request.method,
        "path": loggable_path(),
    }


def request_id(incoming: str) -> str:
    """The id of a request: the one a trusted proxy gave (``incoming``) when it looks like one,
    else a new one."""
    return incoming if incoming and REQUEST_ID_RE.match(incoming) else secrets.token_hex(16)


def redact(text: str) -> str:
    """``text`` without link tokens, secret parameter values, or request lines' query strings."""
    text = _REQUEST_LINE_QUERY.sub(r"\1\2", text)
    text = _LINK_TOKEN.sub(rf"\1{REDACTED}", text)
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)


def loggable_path() -> str:
    path = request.path
    for name in SECRET_VIEW_ARGS:
        value = (request.view_args or {}).get(name)
        if value:
            path = path.replace(str(value), REDACTED)
    return redact(path)


class Redacting(logging.Filter):
    """Rewrites a record's message through ``redact`` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_REDACTING = Redacting()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's fields, extras."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, REQUEST_FIELDS, None)
        message = record.getMessage()
        # A request's own line is made of its method, status and loggable path (log_request).
        entry = _entry(record.created, record.levelname, record.name,
                       message if fields else redact(message))
        # A request's own line carries its fields, read once; other records read them here.
        entry.update(fields or request_fields())
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["error"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(entry)


# One encoder for every line (json.dumps with options makes a new one at each call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _entry(created: float, level: str, logger: str, message: str) -> dict[str, object]:
    """What every line begins with."""
    return {"time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level, "logger": logger, "message": message}


def dict_config(level: str = "INFO", stream: str = "ext://sys.stderr") -> dict:
    """A ``logging.config.dictConfig`` for the provider's processes: JSON lines on ``stream``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                              "stream": stream}},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {name: {"level": floor} for name, floor in LIBRARY_LEVELS.items()},
    }


def gather_only_what_lines_hold() -> None:
    """Have the logging module leave out of every record what the JSON lines never show: the
    caller's file and line (a walk up the stack), the thread, the process and its name. For a
    server process: 3 % of the instructions of an API request (introspection) went to them."""
    # The Logging HOWTO's "Optimization" section gives these switches.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr, for a command whose process has no logging set up yet."""
    if not logging.getLogger().handlers:
        logging.config.dictConfig(dict_config(level))


def init_app(app: Flask, trusted_proxies: int) -> None:
    """Give each request an id (echoed in X-Request-ID), then log and measure it once answered.

    An incoming X-Request-ID is kept only behind trusted proxies (the edge one
    sets it; clients could send anything) and only when it looks like an id.
    The id is given when the request starts, before any hook that could refuse it.
    """

    # Werkzeug's server (the demo's) logs each request line, URL and query string included.
    werkzeug_log = logging.getLogger("werkzeug")
    if _REDACTING not in werkzeug_log.filters:
        werkzeug_log.addFilter(_REDACTING)

    def assign_request_id(_app: Flask, **_extra) -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER, "") if trusted_proxies else "")

    request_started.connect(assign_request_id, app, weak=False)

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    # After the session is saved, which can still turn the answer into a 503.
    request_finished.connect(_log_request, app, weak=False)


def _log_request(_app: Flask, response: Response, **_extra) -> None:
    log_request(request.endpoint or "unmatched", response.status_code,
                time.perf_counter() - g.request_started, request_fields())


def log_request(endpoint: str, status: int, seconds: float, fields: dict[str, str | None]) -> None:
    """An answered request, once: measured, then logged with ``fields`` (``request_fields``).
    ``endpoint`` is the route's name, never the raw URL.

    Where the line's one destination is a ``JsonFormatter`` stream (the production server's
    set-up, ``dict_config``), the request is measured and its line written by ``REQUEST_LINES``,
    a moment later, as that handler would write it: the logging module's record and its
    dispatch cost a third of the line. Any other set-up gets the record, at once.
    """
    handler = _lone_json_stream(log) if log.isEnabledFor(logging.INFO) else None
    if handler is not None:
        REQUEST_LINES.add(handler, (time.time(), endpoint, status, seconds, fields))
        return
    metrics.observe_request(endpoint, str(fields["method"]), status, seconds)
    if log.isEnabledFor(logging.INFO):
        log.info("%s", _request_message(status, fields),
                 extra={**_request_extra(endpoint, status, seconds), REQUEST_FIELDS: fields})


def _request_message(status: int, fields: dict[str, str | None]) -> str:
    return f"{fields['method']} {fields['path']} {status}"


def _request_extra(endpoint: str, status: int, seconds: float) -> dict[str, object]:
    return {"status": status, "duration_ms": round(seconds * 1000, 1), "endpoint": endpoint}


# A request's line and metrics, as ``RequestLines`` holds them until written: when it was
# answered (time.time()), its endpoint, status, duration in seconds and fields.
Answered = tuple[float, str, int, float, dict[str, str | None]]


class RequestLines:
    """The lines of answered requests bound for one JSON stream, with their metrics: a request
    only hands its line's parts over (``add``); a thread of the process measures them and
    writes their lines every ``interval`` seconds, all at once, in one write.

    One line after another, the logging and metrics code stays in the processor's caches: amid
    a request's own work, measuring and writing its line cost 50 µs of an introspection's 300
    (``bench.cpu``), several times what it costs alone. A line is written at most ``interval``
    seconds after its request was answered, and ``flush`` writes what is waiting (a worker
    ending, ``idp.web.server``); a process killed outright loses that much of its lines.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._waiting: collections.deque[tuple[logging.StreamHandler, Answered]] = collections.deque()
        self._begin()
        # A forked process (a server's worker) has none of its parent's threads: its own starts
        # with its first line.
        os.register_at_fork(after_in_child=self._begin)

    def _begin(self) -> None:
        self._some = threading.Event()
        self._writing = threading.Lock()
        self._started = False

    def add(self, handler: logging.StreamHandler, answered: Answered) -> None:
        self._waiting.append((handler, answered))
        if not self._some.is_set():
            self._some.set()
        if not self._started:
            self._start()

    def _start(self) -> None:
        with self._writing:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._write_every_interval, name="request-lines", daemon=True).start()

    def _write_every_interval(self) -> None:
        some = self._some
        while True:
            some.wait()
            time.sleep(self.interval)
            some.clear()
            self.flush()

    def flush(self, timeout: float = -1) -> None:
        """Measure and write the requests waiting, waiting up to ``timeout`` seconds (-1: as
        long as it takes) for a write under way to end."""
        if not self._writing.acquire(timeout=timeout):
            return
        try:
            while self._waiting:
                handler, _ = self._waiting[0]
                lines = []
                while self._waiting and self._waiting[0][0] is handler:
                    answered = self._waiting.popleft()[1]
                    try:
                        lines.append(_line(*answered))
                    except Exception:  # as a failed write: reported, and the others written
                        _report(handler, _request_message(answered[2], answered[4]))
                _write(handler, lines)
        finally:
            self._writing.release()


def _line(created: float, endpoint: str, status: int, seconds: float,
          fields: dict[str, str | None]) -> tuple[str, str]:
    """A request measured, and its line (and its message, for an error report)."""
    metrics.observe_request(endpoint, str(fields["method"]), status, seconds)
    message = _request_message(status, fields)
    entry = _entry(created, logging.getLevelName(logging.INFO), log.name, message)
    entry.update(fields)
    entry.update(_request_extra(endpoint, status, seconds))
    return _ENCODER.encode(entry), message


def _write(handler: logging.StreamHandler, lines: list[tuple[str, str]]) -> None:
    """``lines`` written to ``handler``'s stream as it writes them, at once."""
    handler.acquire()
    try:
        handler.stream.write("".join(line + handler.terminator for line, _message in lines))
        handler.flush()
    except Exception:  # as StreamHandler.emit: a failed write is reported, never raised
        for _line_written, message in lines:
            _report(handler, message)
    finally:
        handler.release()


def _report(handler: logging.StreamHandler, message: str) -> None:
    """A request line that could not be written, reported as its handler reports its failures."""
    handler.handleError(logging.makeLogRecord({"name": log.name, "msg": message, "levelno": logging.INFO,
                                               "levelname": logging.getLevelName(logging.INFO)}))


# How long a request's line may wait to be written with others (``RequestLines``).
REQUEST_LINES_INTERVAL = 0.02
REQUEST_LINES = RequestLines(REQUEST_LINES_INTERVAL)
atexit.register(REQUEST_LINES.flush, 5.0)


def _lone_json_stream(logger: logging.Logger) -> logging.StreamHandler | None:
    """The one handler ``logger``'s INFO records reach, when it is a ``JsonFormatter`` stream and
    no filter stands in the way; else None."""
    found: logging.StreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if (found is not None or type(handler) is not logging.StreamHandler or handler.filters
                    or not isinstance(handler.formatter, JsonFormatter) or handler.level > logging.INFO):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found

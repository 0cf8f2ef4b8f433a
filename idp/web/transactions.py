"""One database transaction per request, committed once its view has answered.

Views never commit. A view that raises is rolled back (the error boundary then answers).
The protocol API (token, revocation, …) commits only a successful answer: an OAuth error
there means nothing happened (RFC 6749 5.2), so what the failed grant added is dropped,
for instance the tokens of the loser of two concurrent redemptions of one code. Services
that must commit earlier (a code whose delivery the page reports) say so in their contract.

A request that comes too late changes nothing: once ``request_deadline`` seconds have passed
since it was received, or once its client has closed the connection (it gave up waiting), no
commit of its session that would write goes through (``TooLate``, answered 503 with
Retry-After). A request held up by a dependency that answers again after its client has gone
(a database frozen for a while) would otherwise go on to act for nobody: rotate a refresh
token whose new value no one receives, so that the client's retry with the old one looks
like a replay and revokes the member's sign-in.
"""

from __future__ import annotations

import functools
import inspect
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from flask.ctx import RequestContext
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from idp.db import AUTOCOMMIT, WROTE

# The environ key holding when the provider received the request (time.monotonic()).
RECEIVED = "idp.received"
# The environ key of a threading.Event set once the client has closed its connection.
CLIENT_GONE = "idp.client_gone"


class TooLate(Exception):
    """The request outlived its deadline or its client: what it did is not committed."""


class Provider(Flask):
    """Flask, with the request's transaction committed once its view has answered."""

    #: Blueprints whose error answers leave nothing behind.
    commit_on_success_only: frozenset[str] = frozenset({"oidc_api"})
    #: Seconds after it was received past which a request commits nothing (create_app sets it).
    request_deadline: float = 10.0
    #: Whether a request is answered from memory, waiting on nothing (create_app sets it): the
    #: production server runs those without handing them to a thread (idp.web.server).
    from_memory: Callable[[dict[str, Any]], bool] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ.setdefault(RECEIVED, time.monotonic())
        return super().__call__(environ, start_response)

    def request_context(self, environ: dict[str, Any]) -> RequestContext:
        return _MatchedOnce(self, environ)

    def ensure_sync(self, func):
        # Flask asks this of every view and hook at each call; each one's answer never changes.
        return self.async_to_sync(func) if _coroutine_function(func) else func

    def dispatch_request(self):
        response = self.make_response(super().dispatch_request())
        session = g.get("db")
        if session is not None and not session.info.get(AUTOCOMMIT) and session.in_transaction():
            if response.status_code >= 400 and request.blueprint in self.commit_on_success_only:
                session.rollback()
            else:
                session.commit()
        return response


class _MatchedOnce(RequestContext):
    """A request context that matches the URL only if the session has not already done so
    (``idp.sessions``: it opens first, and matches the URL of a request with a cookie)."""

    def match_request(self) -> None:
        if self.request.url_rule is None:
            super().match_request()


_coroutine_function = functools.lru_cache(maxsize=1024)(inspect.iscoroutinefunction)


def refuse_late_commits(sessions: sessionmaker) -> None:
    """Make each request's session (``g.db``) refuse to commit writes once the request is too late."""
    event.listen(sessions, "do_orm_execute", _note_write)
    event.listen(sessions, "after_flush", _note_flush)
    event.listen(sessions, "after_commit", _forget_writes)
    event.listen(sessions, "after_rollback", _forget_writes)
    event.listen(sessions, "before_commit", _in_time)


def _note_write(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[WROTE] = True


def _note_flush(session: Session, _context: Any) -> None:
    session.info[WROTE] = True


def _forget_writes(session: Session) -> None:
    session.info.pop(WROTE, None)


def _in_time(session: Session) -> None:
    if not (has_request_context() and g.get("db") is session):
        return  # a command's, a worker's, or a session a request opened for itself
    if not (session.info.get(WROTE) or session.new or session.dirty or session.deleted):
        return
    check_in_time()


def check_in_time() -> None:
    """Raise ``TooLate`` if the current request may no longer write: past its deadline, or its
    client gone. A write made outside a transaction (one statement) checks this before it is
    sent, and bounds itself by ``commit_deadline`` for the time it waits on the database."""
    environ = request_environ()
    received = environ.get(RECEIVED)
    deadline = _deadline_seconds()
    if received is not None and time.monotonic() - received > deadline:
        raise TooLate(f"more than {deadline}s after the request was received")
    if client_gone(environ):
        raise TooLate("the client closed the connection")


def commit_deadline() -> datetime:
    """The instant, as naive UTC wall-clock time, past which the current request commits nothing."""
    received = request_environ().get(RECEIVED, time.monotonic())
    left = _deadline_seconds() - (time.monotonic() - received)
    return datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=left)


def answering(environ: dict[str, Any]) -> None:
    """The request of ``environ`` is answered in the current application context, without a
    request context (idp.web.lane)."""
    g.lane_environ = environ


def request_environ() -> dict[str, Any]:
    """The environ of the request being answered: Flask's request's, or that of a request the
    lane answers (``answering``)."""
    return request.environ if has_request_context() else g.lane_environ


def _deadline_seconds() -> float:
    return getattr(current_app, "request_deadline", Provider.request_deadline)


def client_gone(environ: dict[str, Any]) -> bool:
    """Whether the client closed its connection. The production server says so in the
    environ (``CLIENT_GONE``, idp.web.server); under Werkzeug's server (the demo's), a peek at
    its socket that finds the end of the stream, without waiting: the client has closed (HTTP
    clients do not half-close a connection while they wait for an answer). Anything else,
    including a TLS socket that cannot be peeked at, counts as still there.
    """
    gone = environ.get(CLIENT_GONE)
    if gone is not None:
        return gone.is_set()
    sock = environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except ConnectionError:
        return True
    except (OSError, ValueError):
        return False

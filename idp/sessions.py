"""Server-side browser sessions kept in the store.

The cookie carries only a random id. The data lives in the store with the idle
timeout as its time to live; the absolute timeout is checked against the
creation time. ``regenerate()`` gives the session a new id (at every sign-in).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Request, Response, has_request_context
from flask.globals import request_ctx
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import HTTPException

from idp.store import Store, StoreUnavailable

# A session touched less than this long ago is not written back just to bump
# its idle timer: it saves a store write on most requests.
TOUCH_INTERVAL = 60


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, data: Mapping[str, Any] | None = None, sid: str | None = None,
                 created: float | None = None) -> None:
        def on_update(_self: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.sid = sid
        self.created = created if created is not None else time.time()
        self.previous_sid: str | None = None
        self.modified = False
        self.touched_at: float | None = None
        # Set when the store could not be read: the request must fail closed.
        self.unavailable = False

    @property
    def new(self) -> bool:  # type: ignore[override]
        return self.sid is None

    def regenerate(self) -> None:
        """Move the data to a fresh id (session fixation defence) and restart its clock."""
        if self.sid:
            self.previous_sid = self.sid
        self.sid = None
        self.created = time.time()
        self.modified = True

    def end(self) -> None:
        """Forget everything, server-side too."""
        self.clear()
        self.regenerate()


class StoreSessionInterface(SessionInterface):
    def __init__(self, store: Store, *, idle: int, absolute: int, secure: bool,
                 on_unavailable: Callable[[Response], None] | None = None,
                 stateless_blueprints: frozenset[str] = frozenset(),
                 stateless_endpoints: frozenset[str] = frozenset({"static"})) -> None:
        self.store = store
        # Endpoints that never use the session (machine-to-machine APIs, static files): a
        # browser's cookie sent to them is neither read from the store nor written back.
        self.stateless_blueprints = stateless_blueprints
        self.stateless_endpoints = stateless_endpoints
        # Turns the response into a "try again later" page when the store fails on save.
        self.on_unavailable = on_unavailable
        self.idle = idle
        self.absolute = absolute
        self.secure = secure
        self.cookie_name = "__Host-idp-session" if secure else "idp-session"

    def _key(self, sid: str) -> str:
        return f"session:{sid}"

    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        sid = request.cookies.get(self.cookie_name)
        if not sid or len(sid) > 64:
            return ServerSession()
        endpoint = self._endpoint(app, request)
        if endpoint in self.stateless_endpoints or (
                endpoint.rpartition(".")[0] or None) in self.stateless_blueprints:
            return None  # Flask's null session: empty, and never saved
        try:
            raw = self.store.get(self._key(sid))
        except StoreUnavailable:
            session = ServerSession()
            session.unavailable = True
            return session
        if not raw:
            return ServerSession()
        record = json.loads(raw)
        if record["created"] + self.absolute <= time.time():
            self.store.delete(self._key(sid))
            return ServerSession()
        session = ServerSession(record["data"], sid=sid, created=record["created"])
        session.touched_at = record.get("touched", record["created"])
        return session

    @staticmethod
    def _endpoint(app: Flask, request: Request) -> str:
        """The endpoint the request goes to. The session opens before Flask matches the URL, so
        it is matched here (only when a cookie came), by the request context's own URL adapter,
        and the match is kept on the request, where Flask finds it (``idp.web.transactions``)."""
        own = has_request_context() and request_ctx.request is request
        adapter = request_ctx.url_adapter if own else app.create_url_adapter(request)
        if adapter is None:  # only without a request, which open_session always has
            return ""
        try:
            rule, args = adapter.match(return_rule=True)
        except HTTPException:
            return ""
        request.url_rule, request.view_args = rule, dict(args)
        return str(rule.endpoint)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Flask passes back what open_session made, and never its null session.
        if not isinstance(session, ServerSession) or session.unavailable:
            return
        if session.sid is None and not session.modified:
            return  # a new session nothing was put in (every API call): nothing to store
        if response.cache_control.public:
            # A shared cache may keep this response and serve it to others: it must not
            # carry anyone's session id. A view that changes the session is not public.
            return
        try:
            self._save(session, response)
        except StoreUnavailable:
            if self.on_unavailable is None:
                raise
            self.on_unavailable(response)

    @staticmethod
    def _written_now(session: ServerSession, now: float) -> bool:
        """Whether this response writes the session back, restarting its idle timer."""
        stale = session.touched_at is None or now - session.touched_at >= TOUCH_INTERVAL
        return session.modified or session.new or stale

    def expires_in(self, session: ServerSession) -> int:
        """Seconds until the session ends if nothing more happens (as of this response)."""
        now = time.time()
        last_write = now if self._written_now(session, now) else session.touched_at or now
        return max(0, int(min(last_write + self.idle, session.created + self.absolute) - now))

    def _save(self, session: ServerSession, response: Response) -> None:
        # One store call whatever happened: the record under a new id replaces the previous one.
        previous, session.previous_sid = session.previous_sid, None
        now = time.time()
        if not session:
            ended = [self._key(sid) for sid in (previous, session.sid) if sid]
            if ended:
                self.store.delete(*ended)
            if session.sid:
                response.delete_cookie(self.cookie_name, path="/", secure=self.secure, httponly=True)
            return
        if not self._written_now(session, now):
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
        remaining = int(session.created + self.absolute - now)
        ttl = max(1, min(self.idle, remaining))
        record = json.dumps({"created": session.created, "touched": now, "data": dict(session)})
        if previous:
            self.store.replace(self._key(previous), self._key(session.sid), record, ttl)
        else:
            self.store.set(self._key(session.sid), record, ttl)
        response.set_cookie(
            self.cookie_name,
            session.sid,
            httponly=True,
            secure=self.secure,
            samesite="Lax",
            path="/",
        )
        response.vary.add("Cookie")

"""The floor application: the protocol API's requests and the sign-in's, answered with as
little as the stack allows, for ``bench.floor`` (which serves it with granian and measures it).

It answers ``GET /malakoff/userinfo`` with a bearer token, ``POST /malakoff/introspect`` and
``POST /malakoff/revoke`` with a client's credentials, as the provider does (the same answers,
the security headers, a request id, a JSON log line), through the parts of the provider that do
the protocol's work: Authlib's bearer token validation (RFC 6750) and the provider's own
introspection and revocation endpoints (``idp.oidc.server``: Authlib's, with the provider's
client authentication and its client cache), the ledger's statements (``idp.oidc.ledger``,
SQLAlchemy Core, compiled once) and the claims it releases (``idp.oidc.claims``), under the
production server (granian, through ``idp.web.server``'s bridge, or through granian's WSGI
interface for comparison). It leaves out all the rest: Flask (the endpoints are given the
request's statements and tenant directly, not through Flask's context), the input gate (the
Host check aside), sessions, CORS, metrics, and SQLAlchemy's execution and pool: the
statements run prepared on one psycopg connection per thread, kept open. Given a client and
Redis, it answers the sign-in's requests too (``bench.signin_floor``). It answers nothing else
(a bare 404; 200 at ``/ready``): it is a measure, not a server.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import namedtuple
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.requests import OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenValidator
from sqlalchemy import Connection, create_engine
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES

from bench import seed, signin_floor
from bench.signin_floor import SignInFloor
from idp.db import utcnow
from idp.oidc import server as oidc_server
from idp.oidc.claims import user_claims
from idp.oidc.clients import ClientCache
from idp.oidc.server import AccessTokenValidator, Introspection, LaneRequest, Provider, Revocation
from idp.web import gate
from idp.web.headers import SECURITY_HEADERS, UNCACHED
from idp.web.server import WsgiBridge

# The floor's paths, those of ours, by scenario.
PATHS = {"userinfo": f"/{seed.TENANT}/userinfo", "introspection": f"/{seed.TENANT}/introspect",
         "revocation": f"/{seed.TENANT}/revoke"}
SIGNIN_PATHS = frozenset(signin_floor.PATHS.values())
ALL_PATHS = frozenset(PATHS.values()) | SIGNIN_PATHS
# What the server process is given (``bench.floor``'s ``floor_server``), by name.
DATABASE_VARIABLE = "FLOOR_DATABASE_URL"
ISSUER_VARIABLE = "FLOOR_ISSUER"
LOG_VARIABLE = "FLOOR_LOG"
CLIENT_VARIABLE = "FLOOR_CLIENT"  # the client's id and secret, as id:secret
REDIS_VARIABLE = "FLOOR_REDIS_URL"


class _Prepared(threading.local):
    """``idp.db.Statements`` as the floor runs them: each statement compiled once, then run
    prepared on one cursor of one psycopg connection per thread, kept open, in autocommit."""

    postgresql = True

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.cursor = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True).cursor()
        self._compiled: dict[Any, tuple[Any, list[Any]]] = {}
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        """A SQLAlchemy connection in autocommit, for the provider's rare paths (a code presented
        again revokes what it gave), made at the first."""
        if self._connection is None:
            self._connection = create_engine(self.database_url, isolation_level="AUTOCOMMIT").connect()
        return self._connection

    def close(self) -> None:
        """The calling thread's connections to PostgreSQL."""
        self.cursor.connection.close()
        if self._connection is not None:
            self._connection.close()
            self._connection.engine.dispose()

    def first(self, statement: Any, params: dict[str, Any]) -> Any:
        if statement not in self._compiled:
            self._compiled[statement] = (statement.compile(dialect=postgresql_psycopg.dialect()), [None])
        compiled, row = self._compiled[statement]
        cursor = self.cursor
        cursor.execute(compiled.string, compiled.construct_params(params), prepare=True)
        found = cursor.fetchone()
        if found is None:
            return None
        if row[0] is None:  # the row's type, from the first answer's column names
            row[0] = namedtuple("Row", [column.name for column in cursor.description or ()])
        return row[0](*found)


class _Ledger(BearerTokenValidator):
    """The access token's row, by the provider's lookup on the floor's statements."""

    def __init__(self, statements: _Prepared):
        super().__init__()
        self.statements = statements

    def authenticate_token(self, token_string: str) -> Any:
        return AccessTokenValidator.find(self.statements, token_string, seed.TENANT)


class FloorProvider(Provider):
    """The provider's authorization server, answering as the lane does, without an application."""

    def handle_response(self, status_code, payload, headers):
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        return status_code, headers, body.encode() if isinstance(body, str) else body


def _provider(statements: _Prepared, issuer: str, kind: type[FloorProvider] = FloorProvider) -> FloorProvider:
    """The provider's introspection and revocation, given the floor's statements and tenant
    where the provider's take them from Flask's context (``idp.oidc.server``'s names), with
    the production default for the client cache and no request deadline."""
    tenant = SimpleNamespace(slug=seed.TENANT, issuer=issuer)
    oidc_server.single_statements = lambda: statements  # type: ignore[assignment]
    oidc_server.current_tenant = lambda: tenant  # type: ignore[assignment]
    oidc_server.check_in_time = lambda: None
    oidc_server.commit_deadline = lambda: utcnow() + timedelta(seconds=30)
    provider = kind(ClientCache(10))
    provider.register_endpoint(Introspection)
    provider.register_endpoint(Revocation)
    return provider


# The provider's endpoints the floor answers through Authlib, by path.
ENDPOINTS = {PATHS["introspection"]: "introspection", PATHS["revocation"]: "revocation"}


class FloorApp:
    """The floor application (WSGI); with ``client`` (its id and secret) and ``redis_url``, the
    sign-in's too (``bench.signin_floor``)."""

    def __init__(self, database_url: str, log_path: str, issuer: str, client: tuple[str, str] | None = None,
                 redis_url: str | None = None, *, provider_kind: type[FloorProvider] = FloorProvider):
        self.statements = _Prepared(database_url)
        self.signin = (SignInFloor(self.statements, redis_url, issuer, *client) if client and redis_url
                       else None)
        self.protector = ResourceProtector()
        self.protector.register_token_validator(_Ledger(self.statements))
        self.provider = _provider(self.statements, issuer, provider_kind)
        self.handler = logging.FileHandler(log_path)
        self.log = logging.getLogger("floor")
        self.log.addHandler(self.handler)
        self.log.setLevel(logging.INFO)
        self.log.propagate = False

    def answer(self, environ: dict[str, Any], path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.signin is not None and path in SIGNIN_PATHS:
            return self.signin.answer(environ, path)
        if path == PATHS["userinfo"]:
            request = OAuth2Request(environ["REQUEST_METHOD"], f"http://{environ['HTTP_HOST']}{path}", None,
                                    EnvironHeaders(environ))
            token = self.protector.validate_request(["openid"], request)
            claims = user_claims(token.account, token.row.scope, token.row.claims, "userinfo")
            return 200, [("Content-Type", "application/json"), *UNCACHED], json.dumps(claims).encode()
        status, headers, content = self.provider.create_endpoint_response(
            ENDPOINTS[path], LaneRequest(environ, signin_floor.posted(environ)))
        return status, list(headers), content

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started = time.perf_counter()
        path = environ["PATH_INFO"]
        if path == "/ready":
            start_response("200 OK", [])
            return [b""]
        if path not in ALL_PATHS or not gate.host_allowed(environ.get("HTTP_HOST", ""),
                                                               environ["wsgi.url_scheme"]):
            start_response("404 Not Found", [])
            return [b""]
        status, headers, body = self.answer(environ, path)
        request_id = secrets.token_hex(16)
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", [
            *headers, ("Content-Length", str(len(body))), *SECURITY_HEADERS, ("X-Request-ID", request_id)])
        self.log.info(json.dumps({"time": time.time(), "request_id": request_id,
                                  "method": environ["REQUEST_METHOD"], "path": path, "status": status,
                                  "duration_ms": round((time.perf_counter() - started) * 1000, 1)}))
        return [body]

    def close(self) -> None:
        """The calling thread's connection to PostgreSQL, those to Redis, the log."""
        self.statements.close()
        if self.signin is not None:
            self.signin.redis.close()
        self.log.removeHandler(self.handler)
        self.handler.close()


# Threads running requests, as in production (``idp.web.server``) unless ``--threads`` says.
THREADS_VARIABLE = "FLOOR_THREADS"


def rsgi_app() -> WsgiBridge:
    """granian's factory: the floor under the production server's bridge."""
    return WsgiBridge(wsgi_app(), threads=int(os.environ[THREADS_VARIABLE]), max_body=1 << 20)


def wsgi_app():
    """granian's factory: the floor under granian's WSGI interface."""
    client = os.environ.get(CLIENT_VARIABLE, "")
    return FloorApp(os.environ[DATABASE_VARIABLE], os.environ[LOG_VARIABLE], os.environ[ISSUER_VARIABLE],
                    tuple(client.split(":", 1)) if client else None,  # type: ignore[arg-type]
                    os.environ.get(REDIS_VARIABLE))

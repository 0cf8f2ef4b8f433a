"""The floors of the protocol API's requests and of the sign-in on this stack, measured next to
ours and the peer.

    .venv/bin/python -m bench.floor [--scenarios userinfo,introspection,revocation,flow,...]
                                    [--seconds 6] [--connections 32] [--threads 2]

How cheap can our answers get, on the stack the provider is bound to? The floor application
answers ``GET /malakoff/userinfo`` with a bearer token, ``POST /malakoff/introspect`` and
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
statements run prepared on one psycopg connection per process, kept open. It answers nothing
else (a bare 404; 200 at ``/ready``): it is a measure, not a server.

With ``flow``, ``flow+password`` or ``flow+password+otp`` it answers the sign-in's requests too,
as the bench's driver sends them (``bench.signin_floor``), under the production server's
bridge only; each password scenario is put against argon2id's bound, measured just before it.

All are pinned to the server core in turn, wrk and the driver to the load core, as
``bench/run`` does; what each costs per request is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import namedtuple
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.requests import OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenValidator
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES

from bench import driver, seed, signin_floor, targets
from bench.cli import Bench, Meter, argon2_verify_ms
from bench.options import parse_args
from bench.signin_floor import SignInFloor
from idp.accounts.hashing import PasswordHasher
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
# The code flows the floor signs in with (the async driver's), without and with the hash.
FLOWS = ("flow", "flow+password", "flow+password+otp")
PASSWORD_FLOWS = FLOWS[1:]
DATABASE_VARIABLE = "FLOOR_DATABASE_URL"
ISSUER_VARIABLE = "FLOOR_ISSUER"
ROOT = Path(__file__).resolve().parent.parent


class _Prepared(threading.local):
    """``idp.db.Statements`` as the floor runs them: each statement compiled once, then run
    prepared on one cursor of one psycopg connection per thread, kept open, in autocommit."""

    postgresql = True

    def __init__(self, database_url: str):
        self.cursor = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True).cursor()
        self._compiled: dict[Any, tuple[Any, list[Any]]] = {}

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


class _Provider(Provider):
    """The provider's authorization server, answering as the lane does, without an application."""

    def handle_response(self, status_code, payload, headers):
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        return status_code, headers, body.encode() if isinstance(body, str) else body


def _provider(statements: _Prepared, issuer: str) -> _Provider:
    """The provider's introspection and revocation, given the floor's statements and tenant
    where the provider's take them from Flask's context (``idp.oidc.server``'s names), with
    the production default for the client cache and no request deadline."""
    tenant = SimpleNamespace(slug=seed.TENANT, issuer=issuer)
    oidc_server.single_statements = lambda: statements  # type: ignore[assignment]
    oidc_server.current_tenant = lambda: tenant  # type: ignore[assignment]
    oidc_server.check_in_time = lambda: None
    oidc_server.commit_deadline = lambda: utcnow() + timedelta(seconds=30)
    provider = _Provider(ClientCache(10))
    provider.register_endpoint(Introspection)
    provider.register_endpoint(Revocation)
    return provider


# The provider's endpoints the floor answers through Authlib, by path.
ENDPOINTS = {PATHS["introspection"]: "introspection", PATHS["revocation"]: "revocation"}


class FloorApp:
    """The floor application (WSGI); with ``client`` (its id and secret) and ``redis_url``, the
    sign-in's too (``bench.signin_floor``)."""

    def __init__(self, database_url: str, log_path: str, issuer: str, client: tuple[str, str] | None = None,
                 redis_url: str | None = None):
        self.statements = _Prepared(database_url)
        self.signin = (SignInFloor(self.statements, redis_url, issuer, *client) if client and redis_url
                       else None)
        self.protector = ResourceProtector()
        self.protector.register_token_validator(_Ledger(self.statements))
        self.provider = _provider(self.statements, issuer)
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
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        status, headers, content = self.provider.create_endpoint_response(
            ENDPOINTS[path], LaneRequest(environ, parse_qsl(body, keep_blank_values=True)))
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
        self.statements.cursor.connection.close()
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
    client = os.environ.get("FLOOR_CLIENT", "")
    return FloorApp(os.environ[DATABASE_VARIABLE], os.environ["FLOOR_LOG"], os.environ[ISSUER_VARIABLE],
                    tuple(client.split(":", 1)) if client else None,  # type: ignore[arg-type]
                    os.environ.get("FLOOR_REDIS_URL"))


def floor_server(*, interface: str, core: int, port: int, database_url: str, issuer: str,
                 out: Path, client: tuple[str, str], redis_url: str, threads: int) -> targets.Server:
    command = [str(ROOT / ".venv" / "bin" / "granian"), "--interface", interface, "--factory",
               "--loop", "uvloop", "--workers", "1", "--port", str(port), "--no-ws", "--log-level", "warning",
               # RSGI's requests take the bridge's threads; WSGI's, granian's own.
               *(["--blocking-threads", str(threads)] if interface == "wsgi" else []),
               f"bench.floor:{interface}_app"]
    env = {**os.environ, DATABASE_VARIABLE: database_url, ISSUER_VARIABLE: issuer,
           "FLOOR_LOG": str(out / f"floor-{interface}.log"), "PYTHONPATH": str(ROOT),
           "FLOOR_CLIENT": ":".join(client), "FLOOR_REDIS_URL": redis_url, THREADS_VARIABLE: str(threads)}
    server = targets.Server(command, core=core, env=env, ready_url=f"http://127.0.0.1:{port}/ready",
                            log=out / f"floor-{interface}.out")
    server.name = f"floor ({interface})"
    return server


def _flows(bench: Bench, name: str, server: targets.Server, url: str, scenario: str,
           members: list[seed.Member], flows: driver.OurFlows | driver.PeerFlows) -> tuple[float, float]:
    """Flows per second and CPU ms a flow, the async driver's browsers signing in."""
    meter = Meter(server, None)
    tally, elapsed = asyncio.run(driver.drive(flows, url, scenario, members, seconds=bench.options.seconds,
                                              concurrency=bench.options.connections))
    cpu, _postgres = meter.per(tally.flows)
    if tally.errors:
        raise RuntimeError(f"{name} {scenario}: {tally.errors} errors, the first: {tally.first_error}")
    return tally.flows / elapsed, cpu or 0.0


def _requests(bench: Bench, name: str, server: targets.Server, url: str, scenario: str,
              seeded: seed.Seeded, minter: seed.Minter) -> tuple[float, float]:
    """Requests per second and CPU ms a request, wrk sending them."""
    target = "peer" if name == "peer" else "ours"  # the floors answer ours' requests
    # Each its own requests: what the warm-up consumed is not sent again.
    warm_up, mode = bench.scenario_requests(target, seeded, minter, scenario)
    bench.wrk(url, warm_up, mode, seconds=2)
    requests, mode = bench.scenario_requests(target, seeded, minter, scenario)
    meter = Meter(server, None)
    measure = bench.wrk(url, requests, mode)
    cpu, _postgres = meter.per(measure.requests)
    if measure.errors or measure.exhausted:
        raise RuntimeError(f"{name} {scenario}: {measure.errors} errors, "
                           f"{measure.exhausted} out of inputs; see {bench.options.out}")
    return measure.requests / measure.seconds, cpu or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    known = (*PATHS, *FLOWS)
    parser.add_argument("--scenarios", default=",".join(PATHS), help=f"subset of: {', '.join(known)}")
    parser.add_argument("--seconds", type=float, default=6, help="measured seconds per server (default 6)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads running requests in ours and the floor (default 2, as in production)")
    args = parser.parse_args(argv)
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not scenarios or set(scenarios) - set(known):
        parser.error(f"--scenarios: a subset of {', '.join(known)}")
    options = parse_args(["--scenarios", ",".join(scenarios), "--seconds", str(args.seconds),
                          "--connections", str(args.connections), "--threads", str(args.threads),
                          "--soak", "0", "--quick"])
    options.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, tuple[float, float]]] = {scenario: {} for scenario in scenarios}
    argon2_ms: dict[tuple[str, str], float] = {}  # measured just before each password scenario
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir:
        bench = Bench(options, Path(workdir))
        seed.reset_database(options.database_url)
        seeded = seed.seed(bench.ours_settings(), members=options.members,
                           cheap=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        minter = seed.Minter(bench.ours_settings(), seeded)
        floor_port = options.peer_port + 1
        ours_flows = driver.OurFlows(seeded.client_id, seeded.client_secret, options.database_url)
        try:
            peer = bench.start(targets.peer(core=options.server_core, port=options.peer_port,
                                            config=bench.peer_config(seeded), log=options.out / "peer.log"))
            bench.bearer = {"ours": minter.tokens(1)[0][0], "peer": bench.peer_mint("access", 1)[0]}
            if "flow+password+otp" in scenarios:
                # Ours' outbox worker sends the codes' emails, ours' and the floor's, on the servers' core.
                bench.start(targets.outbox_worker(core=options.server_core, env=bench.ours_env(),
                                                  log=options.out / "outbox.log"))
            servers = [("ours", bench.start_ours("ours"), bench.ours_url)]
            for interface in ("rsgi", "wsgi"):
                server = floor_server(interface=interface, core=options.server_core, port=floor_port,
                                      database_url=options.database_url,
                                      issuer=f"{bench.ours_url}/{seed.TENANT}", out=options.out,
                                      client=(seeded.client_id, seeded.client_secret),
                                      redis_url=options.redis_url, threads=options.threads)
                servers.append((server.name, server, f"http://127.0.0.1:{floor_port}"))
            servers.append(("peer", peer, bench.peer_url))
            for name, server, url in servers:
                if server.process is None:  # the floors take the same port in turn
                    bench.start(server)
                flows = (driver.PeerFlows(seeded.client_id, seeded.client_secret) if name == "peer"
                         else ours_flows)
                for scenario in scenarios:
                    if scenario not in FLOWS:
                        figures[scenario][name] = _requests(bench, name, server, url, scenario, seeded,
                                                            minter)
                    elif name != "floor (wsgi)":  # the sign-in's floor under the production bridge only
                        # The flow without the hash: members whose hash has the cheapest cost (ours
                        # is measured so in its own server, below: it would rehash them).
                        cheap = scenario == "flow" and name != "peer"
                        if scenario in PASSWORD_FLOWS:
                            argon2_ms[scenario, name] = argon2_verify_ms(options.server_core)
                        if not (cheap and name == "ours"):
                            members = seeded.cheap_members if cheap else seeded.members
                            figures[scenario][name] = _flows(bench, name, server, url, scenario, members,
                                                             flows)
                if name != "peer":
                    bench.stop(server)
                if name == "ours" and "flow" in scenarios:
                    server = bench.start_ours("ours-cheap-hash", **seed.CHEAP_ARGON2)
                    figures["flow"][name] = _flows(bench, name, server, url, "flow", seeded.cheap_members,
                                                   flows)
                    bench.stop(server)
        finally:
            bench.stop_all()
            minter.close()
    print(f"one worker on core {options.server_core}, {options.threads} threads, {options.connections} "
          f"clients, {args.seconds:g} s each")
    for scenario, rows in figures.items():
        unit = "flows/s" if scenario in FLOWS else "req/s"
        peer_rate = rows["peer"][0]
        bound = "  argon2id ms  x its bound" if scenario in PASSWORD_FLOWS else ""
        print(f"{scenario:18} {unit:>8} {'CPU ms':>10} {'/ peer':>8}{bound}")
        for name, (rate, cpu) in rows.items():
            verify = argon2_ms.get((scenario, name), 0.0)
            share = f"  {verify:11.1f} {rate * verify / 1000:11.2f}" if bound else ""
            print(f"  {name:16} {rate:8,.1f} {cpu:10.3f} {rate / peer_rate:8.2f}{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The floor of a UserInfo request on this stack, measured next to ours and the peer.

    .venv/bin/python -m bench.floor [--seconds 6] [--connections 32]

How cheap can our UserInfo answer get, on the stack the provider is bound to? The floor
application answers ``GET /malakoff/userinfo`` with a valid bearer token as the provider does
(the same claims, the security headers, a request id, a JSON log line), through the parts of the
provider that do the protocol's work: Authlib's bearer token validation (RFC 6750), the
ledger's statement (``idp.oidc.ledger``, SQLAlchemy Core, compiled once) and the claims it
releases (``idp.oidc.claims``), under the production server (granian, through
``idp.web.server``'s bridge, or through granian's WSGI interface for comparison). It leaves out
all the rest: Flask, the input gate (the Host check aside), sessions, CORS, metrics, and
SQLAlchemy's execution and pool: the statement runs prepared on one psycopg connection per
process, kept open. It answers nothing else (a bare 404; 200 at ``/ready``): it is a measure,
not a server.

All three are pinned to the server core in turn, wrk to the load core, as ``bench/run`` does;
what each costs per request is read from /proc.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import psycopg
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.requests import OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenValidator
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from werkzeug.datastructures import EnvironHeaders

from bench import loadgen, seed, targets
from bench.cli import Bench, Meter
from bench.options import parse_args
from idp.accounts.hashing import PasswordHasher
from idp.oidc import ledger
from idp.oidc.claims import user_claims
from idp.oidc.server import PresentedToken
from idp.web import gate
from idp.web.headers import SECURITY_HEADERS, UNCACHED
from idp.web.server import WsgiBridge

PATH = f"/{seed.TENANT}/userinfo"
DATABASE_VARIABLE = "FLOOR_DATABASE_URL"
ROOT = Path(__file__).resolve().parent.parent


class _Ledger(BearerTokenValidator):
    """The access token's row, by the ledger's statement run prepared on one kept connection."""

    def __init__(self, database_url: str):
        super().__init__()
        self.connection = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
        self.statement = ledger._FIND_ACCESS_TOKEN.compile(dialect=postgresql_psycopg.dialect())
        self.row: Any = None  # the row's type, from the first answer's column names

    def authenticate_token(self, token_string: str) -> PresentedToken | None:
        params = self.statement.construct_params(
            ledger._bound(digest=ledger.token_digest(token_string), tenant=seed.TENANT))
        cursor = self.connection.execute(self.statement.string, params, prepare=True)
        found = cursor.fetchone()
        if found is None:
            return None
        if self.row is None:
            self.row = namedtuple("Row", [column.name for column in cursor.description])
        return PresentedToken(self.row(*found))


def floor_app(database_url: str, log_path: str):
    """The floor application (WSGI)."""
    protector = ResourceProtector()
    protector.register_token_validator(_Ledger(database_url))
    log = logging.getLogger("floor")
    log.addHandler(logging.FileHandler(log_path))
    log.setLevel(logging.INFO)
    log.propagate = False

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started = time.perf_counter()
        headers = EnvironHeaders(environ)
        if environ["PATH_INFO"] == "/ready":
            start_response("200 OK", [])
            return [b""]
        if environ["PATH_INFO"] != PATH or not gate.host_allowed(environ.get("HTTP_HOST", ""),
                                                                  environ["wsgi.url_scheme"]):
            start_response("404 Not Found", [])
            return [b""]
        uri = f"http://{environ['HTTP_HOST']}{PATH}"
        request = OAuth2Request(environ["REQUEST_METHOD"], uri, None, headers)
        token = protector.validate_request(["openid"], request)
        body = json.dumps(user_claims(token.account, token.row.scope, token.row.claims, "userinfo")).encode()
        request_id = secrets.token_hex(16)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  *SECURITY_HEADERS, *UNCACHED, ("X-Request-ID", request_id)])
        log.info(json.dumps({"time": time.time(), "request_id": request_id, "method": "GET", "path": PATH,
                             "status": 200, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}))
        return [body]

    return app


def rsgi_app() -> WsgiBridge:
    """granian's factory: the floor under the production server's bridge (one thread)."""
    return WsgiBridge(wsgi_app(), threads=1, max_body=1 << 20)


def wsgi_app():
    """granian's factory: the floor under granian's WSGI interface."""
    return floor_app(os.environ[DATABASE_VARIABLE], os.environ["FLOOR_LOG"])


def floor_server(*, interface: str, core: int, port: int, database_url: str, out: Path) -> targets.Server:
    command = [str(ROOT / ".venv" / "bin" / "granian"), "--interface", interface, "--factory",
               "--loop", "uvloop", "--workers", "1", "--port", str(port), "--no-ws", "--log-level", "warning",
               f"bench.floor:{interface}_app"]
    env = {**os.environ, DATABASE_VARIABLE: database_url, "FLOOR_LOG": str(out / f"floor-{interface}.log"),
           "PYTHONPATH": str(ROOT)}
    server = targets.Server(command, core=core, env=env, ready_url=f"http://127.0.0.1:{port}/ready",
                            log=out / f"floor-{interface}.out")
    server.name = f"floor ({interface})"
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6, help="measured seconds per server (default 6)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (default 32)")
    args = parser.parse_args(argv)
    options = parse_args(["--scenarios", "userinfo", "--seconds", str(args.seconds),
                          "--connections", str(args.connections), "--soak", "0"])
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir:
        bench = Bench(options, Path(workdir))
        seed.reset_database(options.database_url)
        seeded = seed.seed(bench.ours_settings(), members=8,
                           cheap=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        minter = seed.Minter(bench.ours_settings(), seeded)
        floor_port = options.peer_port + 1
        try:
            peer = bench.start(targets.peer(core=options.server_core, port=options.peer_port,
                                            config=bench.peer_config(seeded), log=options.out / "peer.log"))
            servers = [("ours", bench.start_ours("ours"), bench.ours_url, PATH)]
            for interface in ("rsgi", "wsgi"):
                server = floor_server(interface=interface, core=options.server_core, port=floor_port,
                                      database_url=options.database_url, out=options.out)
                servers.append((server.name, server, f"http://127.0.0.1:{floor_port}", PATH))
            servers.append(("peer", peer, bench.peer_url, "/me"))
            bearer = {"peer": bench.peer_mint("access", 1)[0]}
            figures: dict[str, tuple[float, float]] = {}
            for name, server, url, path in servers:
                if server.process is None:  # the floors take the same port in turn
                    bench.start(server)
                token = bearer.get(name) or minter.tokens(1)[0][0]
                requests = [loadgen.Request("GET", path, f"Bearer {token}")]
                bench.wrk(url, requests, seconds=2)  # warm-up
                meter = Meter(server, None)
                measure = bench.wrk(url, requests)
                cpu, _postgres = meter.per(measure.requests)
                if measure.errors:
                    raise RuntimeError(f"{name}: {measure.errors} errors; see {options.out}")
                figures[name] = (measure.requests / measure.seconds, cpu or 0.0)
                if name != "peer":
                    bench.stop(server)
        finally:
            bench.stop_all()
            minter.close()
    peer_rate = figures["peer"][0]
    print(f"UserInfo, one worker on core {options.server_core}, {options.connections} clients, "
          f"{args.seconds:g} s each")
    print(f"{'server':18} {'req/s':>8} {'CPU ms/req':>10} {'req/s / peer':>12}")
    for name, (rate, cpu) in figures.items():
        print(f"{name:18} {rate:8,.0f} {cpu:10.3f} {rate / peer_rate:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

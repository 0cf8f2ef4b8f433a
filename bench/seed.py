"""Our provider's bench data, written through its own models into the bench database.

Everything here runs in the harness process, before and between scenarios:
a fresh schema, one first-party client, members with the bench password
(trusted browser cookies ready), and codes and tokens minted the way the
grants store them, for the scenarios that use each one once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import URL, create_engine, insert, make_url, text
from sqlalchemy.exc import ArgumentError

from idp import create_app, schema
from idp.accounts.hashing import PasswordHasher
from idp.accounts.services import create_account
from idp.db import utcnow
from idp.mfa.services import TrustedDevices
from idp.oidc.clients import register_client
from idp.oidc.models import AuthorizationCode, Token, token_digest
from idp.tokens import KNOWN_BROWSER, TRUSTED_DEVICE, TokenService

# The cheapest argon2id argon2-cffi accepts: the "flow" scenario measures everything but the hash.
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 8, "argon2_parallelism": 1}

TENANT = "malakoff"
PASSWORD = "Bench-Password-2026!"  # noqa: S105 - the bench members' password, nothing else
SCOPE = "openid profile email member offline_access"
REDIRECT_URI = "http://127.0.0.1:9/callback"
# One PKCE pair for every minted code (the verifier is checked on each token request all the same).
CODE_VERIFIER = "bench-code-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
CODE_CHALLENGE = base64.urlsafe_b64encode(
    hashlib.sha256(CODE_VERIFIER.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Member:
    id: str
    login: str
    # Cookies of a browser this member signed in from before (name -> value).
    cookies: dict[str, str]


@dataclass
class Seeded:
    client_id: str
    client_secret: str
    members: list[Member]
    # Members whose hash was made at the cheapest argon2 cost (the flow without the hash).
    cheap_members: list[Member]


class _Precomputed:
    """A hasher that hands out one hash made in advance: N members cost one argon2 hash."""

    def __init__(self, stored: str):
        self.stored = stored

    def hash(self, _password: str) -> str:
        return self.stored


# The databases the bench may reset: their names start with this.
BENCH_DATABASE_PREFIX = "idp_bench"


def database_name(url: str) -> str:
    """The name of the database ``url`` names (its options after it aside); empty for a URL that
    is not one."""
    try:
        return make_url(url).database or ""
    except ArgumentError:
        return ""


def is_bench_database(url: str) -> bool:
    """Whether ``url`` names one of the bench's own databases, the only ones it resets."""
    return database_name(url).startswith(BENCH_DATABASE_PREFIX)


def server_url(url: str) -> URL:
    """The ``postgres`` database of the server ``url`` is on, where databases are listed and made."""
    return make_url(url).set(database="postgres")


def create_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names, unless it exists (through the server's
    ``postgres`` database)."""
    name = database_name(url)
    server = create_engine(server_url(url), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()


def reset_database(url: str) -> None:
    """Create the bench database if needed, then drop and recreate its schema (never another database)."""
    if not is_bench_database(url):
        raise ValueError(f"refusing to reset {database_name(url)!r}: not a bench database")
    create_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    schema.upgrade(engine)
    engine.dispose()


def seed(settings: dict[str, Any], *, members: int, cheap: PasswordHasher) -> Seeded:
    app = create_app(settings)
    services = app.extensions["idp"]
    services.store.client.flushdb()
    services.keystore.ensure_initialized()
    tenant = services.tenants[TENANT]
    session = services.database.session()
    devices = TrustedDevices(session, TokenService(settings["secret_key"], TRUSTED_DEVICE))
    known = TokenService(settings["secret_key"], KNOWN_BROWSER)
    secure = settings.get("cookie_secure", True)
    prefix = "__Host-" if secure else ""

    def make(count: int, hasher, kind: str) -> list[Member]:
        made = []
        for number in range(count):
            login = f"{kind}{number}@bench.example.org"
            account = create_account(
                session, hasher, tenant, given_name="Jeanne", family_name="Martin", password=PASSWORD,
                email=login, member_number=f"{7 if kind == 'cheap' else 8}{number:07d}",
                birthdate=date(1958, 3, 14), phone_number="+33612345688",
            )
            _device, cookie = devices.remember(tenant, account.id, "Bench — Linux")
            made.append(Member(account.id, login, {
                f"{prefix}idp-device-{TENANT}": cookie,
                f"{prefix}idp-browser": known.dumps([account.id]),
            }))
        return made

    try:
        client, secret = register_client(
            session, tenant, name="Bench portal", redirect_uris=[REDIRECT_URI], first_party=True,
            client_id="malakoff-bench",
        )
        seeded = Seeded(
            client.client_id, secret,
            make(members, _Precomputed(services.hasher.hash(PASSWORD)), "member"),
            make(members, _Precomputed(cheap.hash(PASSWORD)), "cheap"),
        )
        session.commit()
    finally:
        session.close()
        services.database.engine.dispose()
    return seeded


class Minter:
    """Codes and tokens inserted as the grants store them (digest only), in bulk.

    Each table is analyzed once filled, as autovacuum keeps the statistics of a database in
    use: the bench starts on tables created seconds before, and PostgreSQL would otherwise
    plan the provider's prepared statements for an empty table and keep that plan. The
    refresh grant's, for one, then finds the presented token through the index of the
    client's tokens (every token of the bench's one client) rather than its digest's: its
    cost grows with each token issued (0.6 to 2.3 ms of PostgreSQL CPU per request over
    three batches of 1,500 in ``bench.cpu``, against 0.21–0.32 analyzed).
    """

    def __init__(self, settings: dict[str, Any], seeded: Seeded):
        self.engine = create_engine(settings["database_url"])
        self.client_id = seeded.client_id
        self.account_id = seeded.members[0].id

    def _insert(self, model, rows: list[dict]) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(model), rows)
            connection.execute(text(f"ANALYZE {model.__tablename__}"))

    def codes(self, count: int) -> list[str]:
        now = utcnow()
        values = [secrets.token_urlsafe(32) for _ in range(count)]
        self._insert(AuthorizationCode, [{
            "code_digest": token_digest(value), "tenant": TENANT, "client_id": self.client_id,
            "account_id": self.account_id, "redirect_uri": REDIRECT_URI, "scope": SCOPE,
            "nonce": "bench", "auth_time": int(now.timestamp()), "acr": "urn:mh:acr:pwd", "amr": ["pwd"],
            "code_challenge": CODE_CHALLENGE, "code_challenge_method": "S256",
            "created_at": now, "expires_at": now + timedelta(hours=1),
        } for value in values])
        return values

    def tokens(self, count: int) -> list[tuple[str, str]]:
        """(access token, refresh token) pairs, each of its own family."""
        now = utcnow()
        pairs = [(secrets.token_urlsafe(32), secrets.token_urlsafe(32)) for _ in range(count)]
        self._insert(Token, [{
            "tenant": TENANT, "client_id": self.client_id, "account_id": self.account_id,
            "access_token_digest": token_digest(access), "refresh_token_digest": token_digest(refresh),
            "refresh_expires_at": now + timedelta(days=30), "scope": SCOPE, "issued_at": now,
            "expires_in": 3600, "family_id": secrets.token_hex(16), "auth_time": int(now.timestamp()),
            "acr": "urn:mh:acr:pwd", "amr": ["pwd"],
        } for access, refresh in pairs])
        return pairs

    def close(self) -> None:
        self.engine.dispose()

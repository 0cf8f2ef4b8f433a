"""The provider's collaborators, built once per app, and the one place to find a service.

``Services`` holds what is built once (settings, database, store, keys, tenants,
hasher, channels). Per-request services (the OTP service, trusted devices, the
sign-in, the message queue …) are made by factories registered once in
``create_app`` (``idp.wiring``) and found by their class, Warehouse's
``find_service`` model: views and commands ask ``find_service(OtpService)``,
nothing defines accessors of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import abort, current_app, g, request
from sqlalchemy.orm import Session

from idp.accounts.hashing import PasswordHasher
from idp.channels.assembly import Channels
from idp.channels.dispatch import dispatch_at_commit
from idp.config import Settings
from idp.db import AUTOCOMMIT, Database, Statements
from idp.keystore import KeyStore
from idp.store import Store
from idp.tenancy import Tenant

T = TypeVar("T")
# factory(collaborators, database session of the request or command) -> service
Factory = Callable[["Services", Session], Any]


class ServiceRegistry:
    """Factories by the class of what they make; each service is made once per request."""

    def __init__(self) -> None:
        self._factories: dict[type, Factory] = {}

    def register(self, kind: type[T], factory: Callable[[Services, Session], T]) -> None:
        if kind in self._factories:
            raise ValueError(f"{kind.__name__} already has a factory")
        self._factories[kind] = factory

    def create(self, kind: type[T], collaborators: Services, session: Session) -> T:
        try:
            factory = self._factories[kind]
        except KeyError:
            raise LookupError(f"no factory registered for {kind.__name__}") from None
        return factory(collaborators, session)


@dataclass
class Services:
    settings: Settings
    database: Database
    store: Store
    keystore: KeyStore
    tenants: dict[str, Tenant]
    hasher: PasswordHasher
    channels: Channels
    registry: ServiceRegistry = field(default_factory=ServiceRegistry)


def services() -> Services:
    return current_app.extensions["idp"]


def find_service(kind: type[T]) -> T:
    """The ``kind`` service of the current request (or command), on its database session."""
    found = g.setdefault("services", {})
    if kind not in found:
        found[kind] = services().registry.create(kind, services(), db())
    return found[kind]


def db() -> Session:
    """The session of the current request or command, made at its first use, closed at
    teardown: outside a transaction if the request said so (``without_transaction``)."""
    if "db" not in g:
        database = services().database
        g.db = database.reader() if g.get("without_transaction") else dispatch_at_commit(database.session())
    return g.db


def autocommit(view):
    """For views whose statements each stand alone: reads, and writes made in one statement
    (``idp.oidc.ledger``). They run outside a transaction (``Database.reader``), each committed
    on its own: one round trip, no BEGIN, COMMIT or ROLLBACK around it."""

    @functools.wraps(view)
    def alone(*args, **kwargs):
        without_transaction()
        return view(*args, **kwargs)

    return alone


def autocommit_shown(view):
    """For views that show a page on GET from reads only, and write on POST in a transaction:
    the GET's statements run outside one, as ``autocommit``'s do (no BEGIN and ROLLBACK around
    them)."""

    @functools.wraps(view)
    def shown(*args, **kwargs):
        if request.method == "GET":
            without_transaction()
        return view(*args, **kwargs)

    return shown


def without_transaction() -> None:
    """The current request's statements run outside a transaction (``Database.reader``), each
    committed on its own: a request that only reads, or writes in single statements. Called
    before its first query; the session is made when one is first needed (many such requests
    need none: their statements stand alone, ``single_statements``)."""
    g.without_transaction = True


def single_statements() -> Statements:
    """The current request's statements that each stand alone (``idp.oidc.ledger``): one
    round trip each, committed on its own. Closed at teardown."""
    if "statements" not in g:
        g.statements = services().database.statements()
    return g.statements


def close_db(_exc=None) -> None:
    statements = g.pop("statements", None)
    if statements is not None:
        statements.close()
    session = g.pop("db", None)
    if session is not None:
        if not session.info.get(AUTOCOMMIT):
            session.rollback()
        session.close()


def current_tenant() -> Tenant:
    tenant = g.get("tenant")
    if tenant is None:
        abort(404)
    return tenant

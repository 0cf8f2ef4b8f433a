"""The provider's collaborators, built once per app and reached from views and the CLI."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import abort, current_app, g
from sqlalchemy.orm import Session

from idp.accounts.hashing import PasswordHasher
from idp.channels.services import Channels
from idp.config import Settings
from idp.db import Database
from idp.keystore import KeyStore
from idp.store import Store
from idp.tenancy import Tenant


@dataclass
class Services:
    settings: Settings
    database: Database
    store: Store
    keystore: KeyStore
    tenants: dict[str, Tenant]
    hasher: PasswordHasher
    channels: Channels


def services() -> Services:
    return current_app.extensions["idp"]


def db() -> Session:
    """The session of the current request or command, closed at teardown."""
    if "db" not in g:
        g.db = services().database.session()
    return g.db


def read_only(view):
    """For views that never write: their queries run outside a transaction (``Database.reader``)."""

    @functools.wraps(view)
    def reading(*args, **kwargs):
        g.db = services().database.reader()
        return view(*args, **kwargs)

    return reading


def close_db(_exc=None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()


def current_tenant() -> Tenant:
    tenant = g.get("tenant")
    if tenant is None:
        abort(404)
    return tenant

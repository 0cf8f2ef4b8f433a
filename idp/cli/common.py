"""What the command modules share: resolving --tenant, and one transaction per command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from idp.extensions import db, services
from idp.tenancy import Tenant


def tenant_by_slug(slug: str) -> Tenant:
    tenants = services().tenants
    if slug not in tenants:
        known = ", ".join(sorted(tenants))
        raise click.BadParameter(f"unknown tenant {slug!r} (known: {known})", param_hint="--tenant")
    return tenants[slug]


@contextmanager
def transaction() -> Iterator[Session]:
    """The command's session; committed if the command succeeds, rolled back otherwise."""
    session = db()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise

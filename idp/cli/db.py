"""`idp db`: schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import AppGroup
from sqlalchemy.engine import Engine

from idp import schema
from idp.db import Database
from idp.extensions import services

group = AppGroup("db", help="Database schema (Alembic migrations).")


@contextmanager
def _migrating() -> Iterator[Engine]:
    """An engine whose statements may run as long as a migration needs (an index on a big
    table); connecting stays bounded."""
    database = services().database
    migrating = Database(database.url, database.timeouts.without_statement_bound())
    try:
        yield migrating.engine
    finally:
        migrating.engine.dispose()


@group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    with _migrating() as engine:
        schema.upgrade(engine, revision)
        click.echo(f"database at {schema.current(engine)}")


@group.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. -1, or base)."""
    with _migrating() as engine:
        schema.downgrade(engine, revision)
        click.echo(f"database at {schema.current(engine) or 'base'}")


@group.command("current")
def current() -> None:
    """Show the revision the database is at."""
    click.echo(schema.current(services().database.engine) or "base (empty database)")


@group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def revision(message: str) -> None:
    """Generate a migration from the models (for developers)."""
    schema.autogenerate(services().database.engine, message)

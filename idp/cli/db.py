"""`idp db`: schema migrations."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from idp import schema
from idp.extensions import services

group = AppGroup("db", help="Database schema (Alembic migrations).")


@group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    schema.upgrade(services().database.engine, revision)
    click.echo(f"database at {schema.current(services().database.engine)}")


@group.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. -1, or base)."""
    schema.downgrade(services().database.engine, revision)
    click.echo(f"database at {schema.current(services().database.engine) or 'base'}")


@group.command("current")
def current() -> None:
    """Show the revision the database is at."""
    click.echo(schema.current(services().database.engine) or "base (empty database)")


@group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def revision(message: str) -> None:
    """Generate a migration from the models (for developers)."""
    schema.autogenerate(services().database.engine, message)

"""`idp db`: schema migrations."""

from __future__ import annotations

import click

from idp.cli.common import CommandGroup

group = CommandGroup("db", help="Database schema (Alembic migrations).")


def _check_revision(revision: str) -> None:
    if not revision.strip():
        raise click.BadParameter("name a revision (e.g. head, -1, base)", param_hint="REVISION")


@group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest); a SQLite file that does not
    exist yet is created."""
    from idp import schema
    from idp.extensions import services

    _check_revision(revision)
    with services().database.migrating(create=True) as engine:
        schema.upgrade(engine, revision)
        click.echo(f"database at {schema.current(engine)}")


# "-1" is a revision, not an option.
@group.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts, CI).")
def downgrade(revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION (e.g. -1, or base).

    A downgrade drops what later migrations added, data included: it asks for
    confirmation first, unless --yes is given; with no answer (no input), it
    changes nothing.
    """
    from idp import schema
    from idp.extensions import services

    _check_revision(revision)
    with services().database.migrating() as engine:
        now = schema.current(engine) or "base"
        if not yes:
            click.confirm(f"Downgrade the database from {now} to {revision}? Tables and columns added "
                          "since are dropped, with their data", abort=True)
        schema.downgrade(engine, revision)
        click.echo(f"database at {schema.current(engine) or 'base'}")


@group.command("current")
def current() -> None:
    """Show the revision the database is at."""
    from idp import schema
    from idp.extensions import services

    click.echo(schema.current(services().database.engine) or "base (empty database)")


@group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def revision(message: str) -> None:
    """Generate a migration from the models (for developers)."""
    from idp import schema
    from idp.extensions import services

    schema.autogenerate(services().database.engine, message)

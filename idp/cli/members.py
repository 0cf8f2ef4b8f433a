"""`idp members`: the insurer's member registry (SPEC §2).

The import itself is ``idp.registry.importer.MemberImporter``; this command
adds the progress bars and the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from idp.cli.common import tenant_by_slug
from idp.extensions import db
from idp.registry.importer import (
    COLUMNS,
    ImportAborted,
    MemberImporter,
    count_lines,
    read_lines,
)

MAX_ERRORS_SHOWN = 50

group = AppGroup("members", help="The member registry: who may register.")

_COLUMNS_HELP = "\n".join(f"  {name:<14} {meaning}" for name, meaning in COLUMNS.items())


@group.command(
    "import",
    help=f"""Import the member records of a tenant from FILE (CSV).

The file is checked first, line by line: if any line is wrong, every problem
is reported with its line number and NOTHING is imported (exit code 1).
Otherwise members are added or updated in one transaction; identical records
are left untouched, so importing the same file again changes nothing, and
members absent from the file are kept as they are.

FILE is UTF-8 (a BOM is fine), with ';' or ',' between fields, and starts
with a header row naming these columns, in any order:

\b
{_COLUMNS_HELP}
""",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", required=True, help="Tenant whose registry this is (e.g. miel).")
def import_command(file: Path, tenant: str) -> None:
    the_tenant = tenant_by_slug(tenant)
    session = db()
    importer = MemberImporter(session, the_tenant)
    try:
        total = count_lines(file)
        with click.progressbar(length=total, label="checking ", file=sys.stderr) as bar:
            report = importer.check(read_lines(file), progress=bar.update)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    if not report.ok:
        shown = report.errors[:MAX_ERRORS_SHOWN]
        for error in shown:
            click.echo(str(error), err=True)
        if report.error_count > len(shown):
            click.echo(f"… and {report.error_count - len(shown)} more", err=True)
        raise click.ClickException(
            f"{report.error_count} error(s) in {file.name}; nothing was imported"
        )
    try:
        with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
            report = importer.apply(read_lines(file), progress=bar.update, source=file.name)
    except ImportAborted as exc:
        raise click.ClickException(f"{exc}; nothing was imported") from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot read {file}: {exc.strerror or exc}; nothing was imported"
        ) from None
    except SQLAlchemyError as exc:
        # apply() has rolled back: the registry is as it was before the command.
        raise click.ClickException(
            f"database error ({type(exc).__name__}); nothing was imported"
        ) from None
    click.echo(f"{file.name} ({the_tenant.slug}): {report.rows} members, {report.summary()}")

"""`idp members`: the insurer's member registry (SPEC §2).

The import itself is ``idp.registry.importer.MemberImporter``; this command
adds the progress bars and the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from idp.cli.common import CommandGroup, tenant_by_slug, tenant_option

MAX_ERRORS_SHOWN = 50

group = CommandGroup("members", help="The member registry: who may register.")


class _ImportCommand(click.Command):
    """Its help lists the importer's columns, read when the help is shown."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from idp.registry.importer import COLUMNS

        columns = "\n".join(f"  {name:<14} {meaning}" for name, meaning in COLUMNS.items())
        self.help = (self.help or "").replace("{columns}", columns)
        super().format_help_text(ctx, formatter)


@group.command(
    "import",
    cls=_ImportCommand,
    help="""Import the member records of a tenant from FILE (CSV).

The file is checked first, line by line: if any line is wrong (or no row
follows the header), every problem is reported with its line number and NOTHING
is imported (exit code 1).
Otherwise members are added or updated in one transaction; identical records
are left untouched, so importing the same file again changes nothing, and
members absent from the file are kept as they are.

FILE is UTF-8 (a BOM is fine), with ';' or ',' between fields, and starts
with a header row naming these columns, in any order:

\b
{columns}
""",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tenant_option(required=True, help="Tenant whose registry this is (e.g. miel).")
def import_command(file: Path, tenant: str) -> None:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from idp.extensions import db
    from idp.registry.importer import (
        ImportAborted,
        MemberImporter,
        NotMemberText,
        count_lines,
        read_lines,
    )
    from idp.registry.models import Member

    the_tenant = tenant_by_slug(tenant)
    session = db()
    # The registry answers before anything is shown: a database that cannot serve (absent,
    # unreachable, without its schema) is then the command's one line (idp.cli.errors).
    session.execute(select(Member.id).limit(1))
    importer = MemberImporter(session, the_tenant)
    try:
        total = count_lines(file)
        with click.progressbar(length=total, label="checking ", file=sys.stderr) as bar:
            report = importer.check(read_lines(file), progress=bar.update)
    except NotMemberText as exc:
        raise click.ClickException(f"{file.name}: {exc}; nothing was imported") from None
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
    except (ImportAborted, NotMemberText) as exc:
        raise click.ClickException(f"{file.name}: {exc}; nothing was imported") from None
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

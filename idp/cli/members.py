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
# A header names ten columns: a first line this long is not a member extract.
MAX_HEADER_BYTES = 64 * 1024

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

The file is checked first, line by line: if any line is wrong, every problem
is reported with its line number and NOTHING is imported (exit code 1).
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
    from idp.registry.importer import ImportAborted, MemberImporter, read_lines
    from idp.registry.models import Member

    the_tenant = tenant_by_slug(tenant)
    session = db()
    # The registry answers before anything is shown: a database that cannot serve (absent,
    # unreachable, without its schema) is then the command's one line (idp.cli.errors).
    session.execute(select(Member.id).limit(1))
    importer = MemberImporter(session, the_tenant)
    try:
        total = _scan(file)
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


def _scan(file: Path) -> int:
    """The number of data lines, once the file looks like text lines at all.

    The line-by-line check reports bad values; what makes the lines themselves
    meaningless is refused here, in one pass, with one line saying why: a NUL
    byte (a binary file, which PostgreSQL could not store either), lines ended by
    CR alone (the whole file would read as one line), an endless first line.
    """
    newlines, last, size = 0, b"\n", 0
    header_end: int | None = None
    carriage_return = False
    with open(file, "rb") as stream:
        while chunk := stream.read(1 << 20):
            nul = chunk.find(b"\0")
            if nul >= 0:
                line = newlines + chunk.count(b"\n", 0, nul) + 1
                raise click.ClickException(
                    f"line {line} of {file.name} holds a NUL byte: not a CSV text file (a binary "
                    "file, or a damaged export); nothing was imported")
            if header_end is None and (at := chunk.find(b"\n")) >= 0:
                header_end = size + at
            carriage_return = carriage_return or b"\r" in chunk
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            size += len(chunk)
    if carriage_return and not newlines:
        raise click.ClickException(
            f"{file.name} ends its lines with CR alone (an old Mac export): save it with LF or "
            "CRLF line endings; nothing was imported")
    if (size if header_end is None else header_end) > MAX_HEADER_BYTES:
        raise click.ClickException(
            f"line 1 of {file.name} is longer than {MAX_HEADER_BYTES} bytes: not a member file "
            "(its first line names the columns); nothing was imported")
    return max(0, newlines + (last != b"\n") - 1)

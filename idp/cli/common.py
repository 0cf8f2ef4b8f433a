"""What the command modules share: resolving --tenant, one transaction per command, tables."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import click
from sqlalchemy.orm import Session

from idp.extensions import db, services
from idp.tenancy import Tenant

P = ParamSpec("P")
R = TypeVar("R")


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


def operator_errors(*errors: type[Exception]):
    """Show these domain errors as a one-line message and exit 1, without a traceback."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except errors as exc:
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorate


# C0 and C1 controls, DEL, and the Unicode marks that reorder or hide text (bidi
# embeddings, overrides and isolates, zero-width characters, line separators): what
# members type may contain them, and a terminal would obey them (ANSI escape
# sequences can rewrite lines, retitle the window, or hide text from the operator).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    r"""``text`` with its control characters shown as escapes (``\x1b``, ``\u202e``)."""
    return _CONTROL.sub(_escape, text)


def printable_json(line: str) -> str:
    r"""A JSON text with the controls json.dumps leaves raw (DEL, C1, bidi) escaped as ``\uXXXX``;
    they occur only inside strings, where the escape means the same character."""
    return _CONTROL.sub(lambda match: f"\\u{ord(match[0]):04x}", line)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under a header, each column as wide as its widest cell, controls escaped."""
    table = [tuple(header), *(tuple(printable(cell) for cell in row) for row in rows)]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

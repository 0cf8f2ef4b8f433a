"""What the command modules share: resolving --tenant, one transaction per command, tables."""

from __future__ import annotations

import functools
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


def echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under a header, each column as wide as its widest cell."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

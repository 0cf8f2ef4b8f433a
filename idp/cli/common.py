"""What the command modules share: the command group, resolving --tenant, one transaction per
command, tables, JSON listings.

This module and the command modules import only click at the top: a command imports the
application's modules when it runs, so that `idp --help` and `idp <group> --help` answer
without loading Flask, SQLAlchemy or the models.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from idp.tenancy import Tenant

P = ParamSpec("P")
R = TypeVar("R")

# Every command that takes --tenant reads it from this variable when the option is not given.
TENANT_ENVVAR = "IDP_TENANT"


def tenant_option(*, required: bool = False, help: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``--tenant SLUG``, also read from ``IDP_TENANT``."""
    return click.option("--tenant", required=required, envvar=TENANT_ENVVAR, show_envvar=True,
                        help=help)


def json_option() -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``--json``: the listing as one JSON object per line (see the README's "JSON output")."""
    return click.option("--json", "as_json", is_flag=True,
                        help="One JSON object per line instead of a table (fields in the README).")


def echo_json(record: Mapping[str, Any]) -> None:
    """One JSON object on one line, controls escaped."""
    click.echo(printable_json(json.dumps(record, ensure_ascii=False, default=str)))


class CommandGroup(click.Group):
    """A group whose commands run inside the provider's application context, as Flask's
    ``AppGroup`` does, but which builds (and imports) the application only when a command runs."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        outer = super().command

        def decorate(function: Callable[..., Any]) -> click.Command:
            return outer(*args, **kwargs)(in_app_context(function))

        return decorate


def in_app_context(function: Callable[..., R]) -> Callable[..., R]:
    """Run ``function`` inside the application context, building the application first."""

    @click.pass_context
    def run(ctx: click.Context, /, *args: Any, **kwargs: Any) -> R:
        from flask import current_app

        if not current_app:
            # The root group's loader, or the ScriptInfo of Flask's test runner.
            app = ctx.find_root().obj.load_app()
            ctx.with_resource(app.app_context())
        return ctx.invoke(function, *args, **kwargs)

    return functools.update_wrapper(run, function)


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` without "nan" and "inf", which Python's float() reads and which a
    range's bounds let through (no comparison with nan is true)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# A row's id (a 32-bit integer column): a larger number names no row, and would not even fit
# in the query.
ROW_ID = click.IntRange(1, 2**31 - 1)


class LazyChoice(click.Choice):
    """A choice among the values a module of the application defines (``"module:NAME"``), read
    when the command's options are first parsed or shown, not when its group is listed."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._resolved: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        if self._resolved is None:
            module, name = self._where.split(":")
            self._resolved = tuple(getattr(importlib.import_module(module), name))
        return self._resolved

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass


def tenant_by_slug(slug: str) -> Tenant:
    from idp.extensions import services

    tenants = services().tenants
    if slug not in tenants:
        known = ", ".join(sorted(tenants))
        raise click.BadParameter(f"unknown tenant {slug!r} (known: {known})", param_hint="--tenant")
    return tenants[slug]


@contextmanager
def transaction() -> Iterator[Session]:
    """The command's session; committed if the command succeeds, rolled back otherwise."""
    from idp.extensions import db

    session = db()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


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

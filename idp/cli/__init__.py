"""The `idp` command: operators' tools and the demo.

Each command group lives in its own module of this package and is attached to
the root group here. Commands run inside an application context; a command
that fails prints a clear message and exits non-zero.
"""

from __future__ import annotations

import click
from flask.cli import ScriptInfo

from idp.config import ConfigError


def _create_app():
    from idp import create_app  # noqa: PLC0415 - the CLI starts before the app exists

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group(help="Member identity provider: operators' commands.")
@click.pass_context
def main(ctx: click.Context) -> None:
    # Commands get the app through Flask's ScriptInfo (tests pass their own app).
    if not isinstance(ctx.obj, ScriptInfo):
        ctx.obj = ScriptInfo(create_app=_create_app, set_debug_flag=False,
                             load_dotenv_defaults=False)


def _register() -> None:
    from idp.cli import (  # noqa: PLC0415
        accounts,
        audit,
        clients,
        db,
        demo,
        keys,
        members,
        migration,
        outbox,
        review,
    )

    for module in (db, keys, clients, members, accounts, review, migration, outbox, audit, demo):
        main.add_command(module.group)


_register()

"""The `idp` command: operators' tools and the demo.

Each command group lives in its own module of this package and is attached to
the root group here. Commands run inside an application context; a command
that fails prints one line saying what to do and exits non-zero: the root
group is the one error boundary (``idp.cli.errors``).
"""

from __future__ import annotations

import logging
import sys

import click
from flask.cli import ScriptInfo

from idp import logs
from idp.cli.errors import log, one_line
from idp.config import ConfigError


def _create_app():
    from idp import create_app  # noqa: PLC0415 - the CLI starts before the app exists

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


class OperatorCommands(click.Group):
    """The root group: whatever a command raises becomes ``Error: <one line>``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            # Click would print the usage lines and a hint first; one line says it all.
            raise _UsageFailure(one_line(exc, None)) from None
        except click.ClickException:
            raise
        except Exception as exc:
            log.debug("command failed", exc_info=exc)
            raise _Failure(one_line(exc, _database_url(ctx))) from None


class _Failure(click.ClickException):
    """Shown as ``Error: <message>``, exit status 1."""


class _UsageFailure(click.ClickException):
    """Bad arguments: exit status 2, as Click gives them, in one line."""

    exit_code = 2


def _database_url(ctx: click.Context) -> str | None:
    info = ctx.find_object(ScriptInfo)
    app = getattr(info, "_loaded_app", None)  # only an app already built: never build one here
    return app.extensions["idp"].settings.database_url if app is not None else None


@click.group(cls=OperatorCommands, help="Member identity provider: operators' commands.")
@click.option("--debug", is_flag=True,
              help="Log what a failed command ran into, with its traceback, on standard error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    if debug:
        # Its own handler: whatever the process's logging is, the details reach stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logs.JsonFormatter())
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)

        def detach() -> None:
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)

        ctx.call_on_close(detach)
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

"""The `idp` command: operators' tools and the demo.

Each command group lives in its own module of this package and is attached to
the root group here. Commands run inside an application context; a command
that fails prints one line saying what to do and exits non-zero: the root
group is the one error boundary (``idp.cli.errors``).

Groups are imported when named, and their modules import the application only
when a command runs: `idp --help` and `idp <group> --help` load neither Flask
nor SQLAlchemy.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from idp.cli.errors import log, one_line

# Each group: the module that defines it (as ``group``) and the line `idp --help` shows for it,
# so that listing the groups imports none of them (tests/cli/test_help.py keeps them in step).
GROUPS: dict[str, tuple[str, str]] = {
    "accounts": ("idp.cli.accounts", "Member accounts of each tenant."),
    "audit": ("idp.cli.audit", "The audit log of security events, newest first."),
    "catcher": ("idp.cli.catcher", "Catch JSON POSTs for trials (SMS gateway, letters)."),
    "clients": ("idp.cli.clients",
                "Manage the relying parties (OIDC clients) registered with each tenant."),
    "db": ("idp.cli.db", "Database schema (Alembic migrations)."),
    "demo": ("idp.cli.demo", "Run the provider, both tenants and their demo portals."),
    "keys": ("idp.cli.keys", "Manage the signing keys."),
    "members": ("idp.cli.members", "The member registry: who may register."),
    "migration": ("idp.cli.migration", "Email-as-login migration: invitations and follow-up."),
    "outbox": ("idp.cli.outbox", "The queue of emails, SMS and letters."),
    "review": ("idp.cli.review", "Registrations that need a person's decision."),
}


class ApplicationLoader:
    """Builds the provider once, when a command first needs it (Flask's ``ScriptInfo`` role)."""

    def __init__(self) -> None:
        self._loaded_app: Any = None

    def load_app(self) -> Any:
        if self._loaded_app is None:
            from idp import create_app
            from idp.config import ConfigError

            try:
                self._loaded_app = create_app()
            except ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from None
        return self._loaded_app


class OperatorCommands(click.Group):
    """The root group: whatever a command raises becomes ``Error: <one line>``; its groups are
    imported when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(GROUPS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in GROUPS:
            return None
        command: click.Command = importlib.import_module(GROUPS[cmd_name][0]).group
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_module, summary) in sorted(GROUPS.items())])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader of the output has gone (`idp audit | head -1`): Click's main() ends
            # quietly, as Unix tools do; what the command had not committed is rolled back.
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
    # Only an app already built (by ApplicationLoader or a test's ScriptInfo): never build one here.
    app = getattr(ctx.find_root().obj, "_loaded_app", None)
    return app.extensions["idp"].settings.database_url if app is not None else None


@click.group(cls=OperatorCommands, help="Member identity provider: operators' commands.")
@click.option("--debug", is_flag=True,
              help="Log what a failed command ran into, with its traceback, on standard error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    if debug:
        from idp import logs

        # Its own handler: whatever the process's logging is, the details reach stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logs.JsonFormatter())
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)

        def detach() -> None:
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)

        ctx.call_on_close(detach)
    # Commands get the app through the object's load_app() (tests pass Flask's ScriptInfo).
    if not hasattr(ctx.obj, "load_app"):
        ctx.obj = ApplicationLoader()

"""The one error boundary of the `idp` command: every failure is one line saying what to do.

Commands raise; the root group (``idp.cli.main``) turns what they raise into
``Error: <one line>`` and a non-zero exit. Failures the operator can act on (the
database unreachable, absent or without its schema, an unusable keys directory…)
get their own words; anything else gets one generic line, and its details go to
the log at debug level only (`idp --debug …` shows them), never a traceback on
the terminal. Commands change nothing when they fail: each runs in one
transaction, rolled back on any exception. What it needs to tell failures apart is
imported when one happens (the command's --help loads none of it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError

log = logging.getLogger("idp.cli")

# PostgreSQL error codes (Appendix A of its manual).
_DATABASE_ABSENT = "3D000"
_LOGIN_REFUSED = ("28000", "28P01")
_NO_SCHEMA = ("42P01", "42703")  # undefined table, undefined column
_TIMED_OUT = ("57014",)  # query_canceled: statement_timeout


def one_line(exc: BaseException, database_url: str | None) -> str:
    """What the operator reads for ``exc``: one line, no secret, a way onward."""
    if isinstance(exc, click.UsageError):
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        return _single(exc.format_message()) + hint
    if isinstance(exc, click.ClickException):
        return _single(exc.format_message())
    from alembic.util import CommandError as MigrationRefused
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from idp.accounts.registration import ReviewError
    from idp.keystore import KeyStoreError
    from idp.oidc.clients import ClientRegistrationError

    # Refusals the domain words for the operator: their message is the line.
    if isinstance(exc, (KeyStoreError, ReviewError, ClientRegistrationError)):
        return _single(str(exc))
    if isinstance(exc, MigrationRefused):  # an unknown revision: Alembic names it
        return f"{_single(str(exc))}; nothing was changed (`idp db current` shows where it is)"
    if isinstance(exc, PoolTimeout):
        return "no database connection became free in time; try again"
    if isinstance(exc, DBAPIError):
        return _database_error(exc, database_url)
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); nothing was changed"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to be read; nothing was changed"
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}; nothing was changed"
    return (f"unexpected error ({type(exc).__name__}); nothing was changed. "
            "Run the command again as `idp --debug …` for the details")


def _database_error(exc: DBAPIError, database_url: str | None) -> str:
    original = exc.orig
    state = getattr(original, "sqlstate", None) or ""
    text = str(original)
    where = _where(database_url)
    if "unable to open database file" in text:
        if _absent_sqlite_file(database_url):  # commands but `idp db upgrade` open only a file
            return (f"the SQLite database {where} does not exist: run `idp db upgrade` to "
                    "create it")
        return (f"cannot open the SQLite database {where}: check that its directory exists and "
                "is writable (IDP_DATABASE_URL)")
    if "no such table" in text or "no such column" in text or state in _NO_SCHEMA:
        return f"the database {where} has no schema, or an older one: run `idp db upgrade`"
    if state == _DATABASE_ABSENT or re.search(r'database ".*" does not exist', text):
        return (f"the database {where} does not exist: create it (createdb), then run "
                "`idp db upgrade`")
    if state in _LOGIN_REFUSED or "authentication failed" in text:
        return f"PostgreSQL refused the login to {where}: check the user and password in " \
               "IDP_DATABASE_URL"
    if state in _TIMED_OUT or "did not answer within" in text:
        return f"the database {where} did not answer in time; nothing was changed, try again"
    if getattr(exc, "connection_invalidated", False) or "connection" in text.lower():
        return (f"cannot reach the database {where}: check that PostgreSQL runs and accepts "
                "connections there (IDP_DATABASE_URL), then try again")
    return f"database error ({type(original).__name__}); nothing was changed"


def _where(database_url: str | None) -> str:
    """The database named without its password."""
    from sqlalchemy.engine import make_url

    if not database_url:
        return "of IDP_DATABASE_URL"
    url = make_url(database_url)  # the settings' own: a URL (idp.config)
    if url.get_backend_name() == "sqlite":
        return url.database or "(in memory)"
    return f"{url.database} on {url.host or 'localhost'}:{url.port or 5432}"


def _absent_sqlite_file(database_url: str | None) -> bool:
    """The URL names a SQLite file that is not there, in a directory that is."""
    from sqlalchemy.engine import make_url

    if not database_url:
        return False
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    path = Path(url.database)
    return not path.exists() and path.parent.is_dir()


def _single(message: str) -> str:
    return " ".join(message.split()) if "\n" in message or "\r" in message else message

"""Engine, one session per request, and the declarative base."""

from __future__ import annotations

import select
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def rowcount(result: Result[Any]) -> int:
    """Rows changed by an UPDATE or DELETE without RETURNING.

    ``Session.execute`` is annotated as returning a ``Result``; for those statements it is a
    ``CursorResult``, which alone carries ``rowcount``.
    """
    return cast("CursorResult[Any]", result).rowcount


def utcnow() -> datetime:
    """Naive UTC, the one representation stored in every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _replace_if_closed_by_server(dbapi_connection, _record, _proxy):
    """Pool checkout: a connection the server has ended is replaced before it is used.

    When PostgreSQL stops (restart, failover, an idle session killed) it sends each
    client an error message and closes the socket, so a dead pooled connection has
    something to read while a healthy idle one has nothing. A poll() with no wait
    tells them apart without the round trip of ``pool_pre_ping``; raising
    DisconnectionError makes the pool discard it and check out another (or a new one).
    """
    try:
        fileno = dbapi_connection.pgconn.socket
    except Exception as exc:  # psycopg.OperationalError once the connection is closed
        raise DisconnectionError() from exc
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError()


class Database:
    """Owns the engine; hands out sessions (one per request, one per CLI command).

    Statement parameters are left out of SQL errors and SQL logs: they carry
    password hashes, message bodies with codes, and personal data.
    """

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False},
                                   hide_parameters=True)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_size=10, max_overflow=10, hide_parameters=True)
            event.listen(engine, "checkout", _replace_if_closed_by_server)
        self.engine: Engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        # Same pool, each statement its own transaction: no BEGIN and ROLLBACK around reads.
        self.reader_sessionmaker = sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)

    def session(self) -> Session:
        return self.sessionmaker()

    def reader(self) -> Session:
        """A session for requests that only read: one round trip per query, none around them.

        Under READ COMMITTED each statement sees its own snapshot anyway, so reads
        outside a transaction see what they would inside one; nothing may be
        written through this session.
        """
        return self.reader_sessionmaker()

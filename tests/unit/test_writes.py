"""Writes in a session's transaction (idp.db.write): on PostgreSQL they run prepared on the
transaction's connection, and must write, count and fail as SQLAlchemy does."""

from __future__ import annotations

import datetime
import itertools

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from idp.db import WROTE, write
from tests.postgres import end_backend

_TICKS = itertools.count(1)


def _tick() -> datetime.datetime:
    """A Python-side default: each call a later instant."""
    return datetime.datetime(2026, 12, 5) + datetime.timedelta(seconds=next(_TICKS))


NOTES = Table(
    "test_writes_notes", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False, default="plain"),
    Column("body", String(200)),
    Column("data", JSON),
    Column("created_at", DateTime, nullable=False, default=_tick),
    Column("changed_at", DateTime, onupdate=_tick),
)
NEW_NOTE = insert(NOTES)
RENAME = update(NOTES).where(NOTES.c.kind == bindparam("p_kind")).values(body=bindparam("p_body"))
# Half a second on each row (PostgreSQL).
SLOW_RENAME = update(NOTES).where(func.pg_sleep(0.5).is_not(None)).values(body=bindparam("p_body"))


@pytest.fixture
def database(app):
    database = app.extensions["idp"].database
    NOTES.create(database.engine)
    yield database
    NOTES.drop(database.engine)


def _rows(database) -> list[tuple]:
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(NOTES).order_by(NOTES.c.id))]


def test_a_write_stores_what_sqlalchemy_stores_with_the_defaults_filled_in(database):
    data = {"claims": {"email": None}, "list": [1, "é"]}
    with Session(database.engine) as session:
        assert write(session, NEW_NOTE, {"id": 1, "body": "Élise", "data": data}) == 1
        session.execute(NEW_NOTE, {"id": 2, "body": "Élise", "data": data})
        assert write(session, NEW_NOTE, {"id": 3, "kind": "other", "body": None, "data": None}) == 1
        session.commit()
    first, second, third = _rows(database)
    assert [first[0], second[0]] == [1, 2]
    assert first[1:4] == second[1:4] == ("plain", "Élise", data)
    assert first[4] < second[4] < third[4]  # each its own default, in order
    assert first[5] is None and second[5] is None
    assert third[1:4] == ("other", None, None)


def test_an_update_counts_its_rows_and_fills_in_its_defaults(database):
    with Session(database.engine) as session:
        for number, kind in ((1, "plain"), (2, "plain"), (3, "other")):
            write(session, NEW_NOTE, {"id": number, "kind": kind})
        assert write(session, RENAME, {"p_kind": "plain", "p_body": "renamed"}) == 2
        assert write(session, RENAME, {"p_kind": "none", "p_body": "renamed"}) == 0
        session.commit()
    rows = _rows(database)
    assert [row[2] for row in rows] == ["renamed", "renamed", None]
    assert rows[0][5] is not None and rows[1][5] is not None and rows[2][5] is None


def test_a_write_is_part_of_the_transaction_and_is_noted_for_the_deadline(database):
    with Session(database.engine) as session:
        session.execute(NEW_NOTE, {"id": 1})
        assert WROTE not in session.info  # a plain session notes nothing; the app's does (its event)
        write(session, NEW_NOTE, {"id": 2})
        # What idp.web.transactions checks before a request commits: past its deadline, not at all.
        assert session.info[WROTE] is True
        session.rollback()
        write(session, NEW_NOTE, {"id": 3})
        session.commit()
    assert [row[0] for row in _rows(database)] == [3]


def _backend(session: Session) -> object:
    """The server process of the session's connection (PostgreSQL), else the driver's connection."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    return connection.connection.driver_connection


def test_a_refused_write_fails_as_sqlalchemy_says_and_the_session_goes_on_on_its_connection(database):
    with Session(database.engine) as session:
        write(session, NEW_NOTE, {"id": 1})
        session.commit()
        before = _backend(session)
        with pytest.raises(IntegrityError):
            write(session, NEW_NOTE, {"id": 1})
        session.rollback()
        # A statement refused is not a connection lost: the connection is kept.
        assert _backend(session) == before
        assert write(session, NEW_NOTE, {"id": 2}) == 1
        session.commit()
    assert [row[0] for row in _rows(database)] == [1, 2]


def test_a_write_over_its_time_fails_as_sqlalchemy_says_and_its_connection_is_kept(database):
    if not database.url.startswith("postgresql"):
        pytest.skip("a statement's time limit is PostgreSQL's")
    with Session(database.engine) as session:
        write(session, NEW_NOTE, {"id": 1})
        session.commit()
        before = _backend(session)
        session.execute(text("SET LOCAL statement_timeout = 50"))
        with pytest.raises(OperationalError):  # what the error boundary answers with a 503
            write(session, SLOW_RENAME, {"p_body": "late"})
        session.rollback()
        assert _backend(session) == before
    assert [row[2] for row in _rows(database)] == [None]


def test_a_connection_that_failed_fails_as_sqlalchemy_says_and_the_next_session_works(database):
    if not database.url.startswith("postgresql"):
        pytest.skip("ending a connection from another is PostgreSQL's")
    with Session(database.engine) as session:
        pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        end_backend(database.url, pid)
        with pytest.raises(OperationalError):  # what the error boundary answers with a 503
            write(session, NEW_NOTE, {"id": 1})
        session.rollback()
    with Session(database.engine) as session:
        assert write(session, NEW_NOTE, {"id": 2}) == 1
        session.commit()
    assert [row[0] for row in _rows(database)] == [2]

"""Statements that each stand alone (idp.db.Statements): on PostgreSQL they run prepared on the
driver's connection, and must answer and fail as SQLAlchemy does."""

from __future__ import annotations

import datetime

import psycopg
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Integer,
    String,
    bindparam,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from idp.db import Database
from tests.conftest import free_port
from tests.postgres import end_backend


@pytest.fixture
def database(app):
    database = app.extensions["idp"].database
    if not database.url.startswith("postgresql"):
        pytest.skip("the driver's own path is PostgreSQL's; elsewhere Statements is SQLAlchemy's")
    return database


def test_a_row_is_what_sqlalchemy_answers(database):
    statement = select(
        bindparam("p_number", type_=Integer).label("number"),
        bindparam("p_text", type_=String).label("text"),
        literal(True, Boolean).label("yes"),
        cast(literal("2026-12-03 10:11:12.5"), DateTime).label("at"),
        cast(literal("1958-03-14"), Date).label("born"),
        cast(literal('{"userinfo": {"email": null}, "list": [1, "a"]}'), JSON).label("claims"),
        literal(None, String).label("nothing"),
    )
    params = {"p_number": 42, "p_text": "Élise"}
    statements = database.statements()
    try:
        row = statements.first(statement, params)
        none = statements.first(statement.where(literal(False, Boolean)), params)
    finally:
        statements.close()
    with database.engine.connect() as connection:
        expected = connection.execute(statement, params).first()
    assert row is not None and none is None
    assert row._fields == tuple(expected._fields)
    assert tuple(row) == tuple(expected)
    assert row.at == datetime.datetime(2026, 12, 3, 10, 11, 12, 500000)
    assert row.claims == {"userinfo": {"email": None}, "list": [1, "a"]}


PID = select(func.pg_backend_pid().label("pid"))


def _pid(database: Database) -> int:
    """The backend a request's statements ran on, the request over."""
    statements = database.statements()
    try:
        return statements.first(PID, {}).pid
    finally:
        statements.close()


def test_a_connection_that_failed_fails_as_sqlalchemy_says_and_the_next_one_works(database):
    one = select(literal(1, Integer).label("one"))
    statements = database.statements()
    pid = statements.first(PID, {}).pid
    end_backend(database.url, pid)
    with pytest.raises(OperationalError):  # what the error boundary answers with a 503
        statements.first(one, {})
    statements.close()
    after = database.statements()
    try:
        assert after.first(one, {}).one == 1
        assert after.first(PID, {}).pid != pid
    finally:
        after.close()


def test_a_statement_over_its_time_fails_as_sqlalchemy_says_and_its_connection_is_kept(own):
    statements = own.statements()
    try:
        pid = statements.first(PID, {}).pid
        statements.first(select(func.set_config("statement_timeout", "50", False).label("set")), {})
        with pytest.raises(OperationalError):  # what the error boundary answers with a 503
            statements.first(select(func.pg_sleep(0.5).label("slept")), {})
        assert statements.first(PID, {}).pid == pid
    finally:
        statements.close()


def test_a_connection_that_cannot_be_made_fails_as_sqlalchemy_says(database):
    """The pool raises the driver's error when it cannot connect; the error boundary answers
    SQLAlchemy's (503), so that is what comes out."""
    closed = make_url(database.url).set(host="127.0.0.1", port=free_port())
    own = Database(closed.render_as_string(hide_password=False))
    try:
        with pytest.raises(OperationalError):
            own.statements().first(select(literal(1, Integer).label("one")), {})
    finally:
        own.engine.dispose()


@pytest.fixture
def own(database):
    """A database with a pool of its own, so that its connections are the ones counted."""
    own = Database(database.url)
    yield own
    own.engine.dispose()


def test_the_next_request_runs_on_the_connection_kept_and_the_pool_hands_out_transactions(own):
    first = _pid(own)
    assert _pid(own) == first
    assert own.engine.pool.checkedout() == 1  # kept, out of the pool
    again = own.engine.raw_connection()
    try:
        # Sessions on this pool run their statements in transactions.
        assert again.driver_connection.autocommit is False
    finally:
        again.close()


def test_the_statements_of_a_kept_connection_run_on_one_cursor(own, monkeypatch):
    """A cursor made per statement cost a fifth of one (bench/RESULTS.md)."""
    first = _pid(own)
    made = []
    cursor = psycopg.Connection.cursor
    monkeypatch.setattr(psycopg.Connection, "cursor",
                        lambda self, *args, **kwargs: made.append(self) or cursor(self, *args, **kwargs))
    assert [_pid(own), _pid(own)] == [first, first]
    assert made == []


def test_beyond_those_kept_the_connections_go_back_to_the_pool_as_its_other_users_expect_them(own):
    keep = own.statement_connections.keep
    busy = [own.statements() for _ in range(keep + 2)]  # requests at the same time
    pids = {statements.first(PID, {}).pid for statements in busy}
    for statements in busy:
        statements.close()
    assert len(pids) == keep + 2
    assert own.engine.pool.checkedout() == keep
    pooled = [own.engine.raw_connection() for _ in range(2)]
    try:
        assert {proxy.driver_connection.info.backend_pid for proxy in pooled} <= pids
        assert all(proxy.driver_connection.autocommit is False for proxy in pooled)
    finally:
        for proxy in pooled:
            proxy.close()


def test_a_kept_connection_the_server_ended_is_replaced_before_it_is_used(own):
    """What a restart or failover does to it while no request uses it: the next request does
    not fail."""
    kept = _pid(own)
    end_backend(own.url, kept)
    replaced = _pid(own)
    assert replaced != kept
    assert _pid(own) == replaced


def test_a_disposed_engine_starts_from_new_connections(own):
    kept = _pid(own)
    own.engine.dispose()
    assert own.engine.pool.checkedout() == 0
    assert _pid(own) != kept

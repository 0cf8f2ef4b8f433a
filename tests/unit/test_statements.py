"""Statements that each stand alone (idp.db.Statements): on PostgreSQL they run prepared on the
driver's connection, and must answer and fail as SQLAlchemy does."""

from __future__ import annotations

import datetime
import time

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
    create_engine,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from idp.db import Database
from tests.conftest import free_port


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


def test_a_connection_that_failed_fails_as_sqlalchemy_says_and_the_next_one_works(database):
    one = select(literal(1, Integer).label("one"))
    statements = database.statements()
    pid = statements.first(select(func.pg_backend_pid().label("pid")), {}).pid
    admin = create_engine(database.url)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):
                if not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                          {"pid": pid}).scalar():
                    break
                time.sleep(0.05)
        with pytest.raises(OperationalError):  # what the error boundary answers with a 503
            statements.first(one, {})
        statements.close()
        after = database.statements()
        try:
            assert after.first(one, {}).one == 1
            assert after.first(select(func.pg_backend_pid().label("pid")), {}).pid != pid
        finally:
            after.close()
    finally:
        admin.dispose()


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


def test_the_connection_goes_back_to_the_pool_as_its_other_users_expect_it(database):
    own = Database(database.url)  # a pool of its own: the one connection it has is the one used
    try:
        statements = own.statements()
        assert statements.first(select(literal(1, Integer).label("one")), {}).one == 1
        statements.close()
        assert own.engine.pool.checkedout() == 0
        again = own.engine.raw_connection()
        try:
            # Sessions on this pool run their statements in transactions.
            assert again.driver_connection.autocommit is False
        finally:
            again.close()
    finally:
        own.engine.dispose()

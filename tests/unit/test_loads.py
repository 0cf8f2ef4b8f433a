"""Objects loaded from a row in a session's transaction (idp.db.load): on PostgreSQL the
statement runs prepared and the object is made from its row; it must be the object the ORM's
own query gives, held and tracked by the session as that one is."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from sqlalchemy import JSON, String, TypeDecorator, bindparam, create_engine, event, func, inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from idp.accounts.models import Account
from idp.db import Base, from_row, load
from tests.postgres import end_backend

BY_EMAIL = select(*Account.__table__.columns).where(Account.email == bindparam("email"))
# The same, loaded on SQLite first in its one test.
BY_EMAIL_ANYWHERE = select(*Account.__table__.columns).where(Account.email == bindparam("email"))
# Half a second before its row (PostgreSQL).
SLOW_BY_EMAIL = BY_EMAIL.where(func.pg_sleep(0.5).is_not(None))


class _Shouted(TypeDecorator):
    """A type that gives its values back changed: SQLAlchemy's result processing at work."""

    impl = String(50)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return value.upper() if value is not None else None


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "test_loads_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # An attribute named apart from its column.
    said: Mapped[str] = mapped_column("body", _Shouted())
    tags: Mapped[Any] = mapped_column(JSON)


NOTE_BY_ID = select(*Note.__table__.columns).where(Note.id == bindparam("id"))


@pytest.fixture
def notes(app):
    engine = app.extensions["idp"].database.engine
    _Base.metadata.create_all(engine)
    yield engine
    _Base.metadata.drop_all(engine)


def test_each_value_is_processed_as_the_orm_processes_it(notes):
    with Session(notes) as session:
        session.add(Note(id=1, said="bonjour élise", tags={"a": [1, "é"]}))
        session.commit()
    with Session(notes) as session:
        loaded = load(session, Note, NOTE_BY_ID, {"id": 1})
        assert loaded is not None
        assert (loaded.said, loaded.tags) == ("BONJOUR ÉLISE", {"a": [1, "é"]})
        assert session.scalar(select(Note.said)) == "BONJOUR ÉLISE"


def _columns(account: Account) -> dict:
    return {column.key: getattr(account, column.key) for column in inspect(Account).column_attrs}


def test_the_object_is_the_one_the_orms_query_gives(app, make):
    made = make.account("miel", email="élise.dupont@example.org", preferences={"statements": "paper",
                                                                              "marketing": True})
    database = app.extensions["idp"].database
    with database.session() as session:
        loaded = load(session, Account, BY_EMAIL, {"email": made.email})
    with database.session() as session:
        queried = session.scalar(select(Account).where(Account.email == made.email))
    assert loaded is not None and queried is not None
    assert _columns(loaded) == _columns(queried)
    assert loaded.preferences == {"statements": "paper", "marketing": True}
    assert loaded.birthdate.year == 1958 and loaded.created_at is not None


def test_no_row_is_none(app):
    with app.extensions["idp"].database.session() as session:
        assert load(session, Account, BY_EMAIL, {"email": "nobody@example.org"}) is None


def test_the_session_tracks_the_object_as_one_it_loaded(app, make):
    made = make.account()
    database = app.extensions["idp"].database
    with database.session() as session:
        loaded = load(session, Account, BY_EMAIL, {"email": made.email})
        assert loaded is not None and inspect(loaded).persistent and not session.dirty
        assert session.get(Account, made.id) is loaded
        loaded.given_name = "Élise"
        session.commit()
    with database.session() as session:
        assert session.get(Account, made.id).given_name == "Élise"


@pytest.fixture
def held(app, make):
    """A session of the provider's holding a member's account, and the account's email."""
    made = make.account()
    with app.extensions["idp"].database.session() as session:
        yield session, session.get(Account, made.id), made.email
        session.rollback()


def test_the_object_the_session_holds_is_given_as_it_is(held):
    session, account, email = held
    account.family_name = "Changed, not yet written"
    assert load(session, Account, BY_EMAIL, {"email": email}) is account
    assert account.family_name == "Changed, not yet written"


def test_changes_not_yet_written_are_written_first(held):
    session, account, email = held
    account.email = "new.address@example.org"
    assert load(session, Account, BY_EMAIL, {"email": "new.address@example.org"}) is account
    assert load(session, Account, BY_EMAIL, {"email": email}) is None


def test_a_load_is_part_of_the_transaction(app, make):
    made = make.account()
    database = app.extensions["idp"].database
    with database.session() as session, database.session() as other:
        session.get(Account, made.id).email = "moved@example.org"
        session.flush()
        assert load(other, Account, BY_EMAIL, {"email": "moved@example.org"}) is None
        assert load(session, Account, BY_EMAIL, {"email": "moved@example.org"}) is not None
        session.rollback()


def _postgresql(app) -> None:
    if app.extensions["idp"].database.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's own behaviour")


def test_a_load_past_its_time_limit_fails_as_sqlalchemy_says_and_keeps_its_connection(app, make):
    _postgresql(app)
    made = make.account()
    database = app.extensions["idp"].database
    with Session(database.engine) as session:
        backend = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        session.connection().exec_driver_sql("SET LOCAL statement_timeout = 100")
        with pytest.raises(OperationalError, match="statement timeout"):
            load(session, Account, SLOW_BY_EMAIL, {"email": made.email})
        session.rollback()
        assert session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar() == backend
        assert load(session, Account, BY_EMAIL, {"email": made.email}).id == made.id


def test_a_load_whose_connection_ends_fails_as_sqlalchemy_says(app, make):
    _postgresql(app)
    made = make.account()
    database = app.extensions["idp"].database
    with Session(database.engine) as session:
        end_backend(database.url, session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar())
        with pytest.raises(OperationalError):
            load(session, Account, BY_EMAIL, {"email": made.email})
        session.rollback()
    with Session(database.engine) as session:
        assert load(session, Account, BY_EMAIL, {"email": made.email}).id == made.id


def test_an_object_made_from_a_row_has_its_values_and_no_session():
    made = from_row(Note, {"id": 7, "said": "ÉCRIT", "tags": ["a"]})
    state = inspect(made)
    assert (made.id, made.said, made.tags) == (7, "ÉCRIT", ["a"])
    assert state.transient and state.session is None
    assert all(not state.attrs[key].history.has_changes() for key in ("id", "said", "tags"))


def test_an_object_is_made_from_a_row_before_any_query_of_the_process():
    """A worker's first request may make a client from its row before the ORM has set up its
    attributes (at a first query or object)."""
    program = textwrap.dedent("""
        from idp.db import from_row
        from idp.oidc.models import Client
        client = from_row(Client, {"client_id": "portal", "redirect_uris": ["https://rp.example.org/cb"]})
        print(client.check_redirect_uri("https://rp.example.org/cb"))
    """)
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,  # noqa: S603
                         check=False)
    assert (ran.returncode, ran.stdout.strip()) == (0, "True"), ran.stderr[-2000:]


def test_statements_run_on_the_driver_are_told_to_sqlalchemys_listeners(app, make):
    """Listeners of ``before_cursor_execute`` (counts, tracing) see the statements run prepared
    as they see SQLAlchemy's own: each once, with its parameters."""
    made = make.account()
    database = app.extensions["idp"].database
    told: list[tuple[str, object]] = []

    def listener(_connection, _cursor, statement, parameters, _context, _many):
        told.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", listener)
    try:
        with database.session() as session:
            load(session, Account, BY_EMAIL, {"email": made.email})
            session.rollback()
        statements = database.statements()
        statements.first(BY_EMAIL, {"email": made.email})
        statements.close()
    finally:
        event.remove(database.engine, "before_cursor_execute", listener)
    selects = [(statement, parameters) for statement, parameters in told if "FROM accounts" in statement]
    assert len(selects) == 2, told
    assert all(made.email in str(parameters) for _statement, parameters in selects)


def test_one_statement_loads_on_each_kind_of_database_a_process_uses(app, make, tmp_path):
    """Its SQL is made for each: SQLite's and PostgreSQL's placeholders differ."""
    made = make.account()
    other_kind = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    Base.metadata.create_all(other_kind)
    with Session(other_kind) as session:
        session.add(Account(id="other-kind", tenant="malakoff", email=made.email, given_name="A",
                            family_name="B"))
        session.commit()
    engines = [other_kind, app.extensions["idp"].database.engine, other_kind]
    found = []
    for engine in engines:
        with Session(engine) as session:
            found.append(load(session, Account, BY_EMAIL_ANYWHERE, {"email": made.email}).id)
    other_kind.dispose()
    assert found == ["other-kind", made.id, "other-kind"]

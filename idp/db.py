"""Engine, one session per request, and the declarative base."""

from __future__ import annotations

import functools
import select
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from sqlalchemy import MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, Row
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapper,
    Session,
    configure_mappers,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

if TYPE_CHECKING:
    from idp.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Session.info key: the session's statements each commit on their own (``Database.reader``),
# so it has nothing to commit or roll back.
AUTOCOMMIT = "idp.autocommit"
# Session.info key: something was written in the current transaction (``write`` sets it, as do
# the session's own statements: idp.web.transactions).
WROTE = "idp.wrote"
# Session.info key: the ``Database`` the session comes from (``statements_beside``).
DATABASE = "idp.database"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_Model = TypeVar("_Model", bound=Base)


def rowcount(result: Result[Any]) -> int:
    """Rows changed by an UPDATE or DELETE without RETURNING.

    ``Session.execute`` is annotated as returning a ``Result``; for those statements it is a
    ``CursorResult``, which alone carries ``rowcount``.
    """
    return cast("CursorResult[Any]", result).rowcount


def utcnow() -> datetime:
    """Naive UTC, the one representation stored in every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def _split_part(text: str | None, delimiter: str, position: int) -> str | None:
    """PostgreSQL's split_part (1-based; "" past the last part), for SQLite."""
    if text is None:
        return None
    parts = text.split(delimiter)
    return parts[position - 1] if 0 < position <= len(parts) else ""


def _prepare_sqlite(dbapi_connection, _record):
    dbapi_connection.create_function("split_part", 3, _split_part, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _open_existing_file(_dialect, _record, cargs, cparams):
    """Engine do_connect (SQLite): open the file only if it exists (SQLite's ``mode=rw``), so that
    a first read does not leave an empty database behind; it comes to be through its
    migrations (``Database.migrating``). A URL that asks for its own URI keeps it."""
    filename = cargs[0]
    if not cparams.get("uri") and filename != ":memory:":
        cargs[0] = f"file:{quote(filename)}?mode=rw"
        cparams["uri"] = True


def _replace_if_closed_by_server(dbapi_connection, _record, _proxy):
    """Pool checkout: a connection the server has ended is replaced before it is used
    (``closed_by_server``); raising DisconnectionError makes the pool discard it and check out
    another (or a new one)."""
    if closed_by_server(dbapi_connection):
        raise DisconnectionError()


def closed_by_server(dbapi_connection: Any) -> bool:
    """Whether the server has ended this idle connection.

    When PostgreSQL stops (restart, failover, an idle session killed) it sends each
    client an error message and closes the socket, so a dead idle connection has
    something to read while a healthy one has nothing. A poll() with no wait
    tells them apart without the round trip of ``pool_pre_ping``.
    """
    try:
        fileno = dbapi_connection.pgconn.socket
    except Exception:  # psycopg.OperationalError once the connection is closed
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@dataclass(frozen=True)
class Timeouts:
    """How long, in seconds, the provider waits on PostgreSQL (0: no bound).

    ``statement`` is enforced twice: PostgreSQL cancels a statement that runs
    longer, and the client gives up on any exchange (statement, commit,
    rollback) unanswered for ``statement`` + ``CLIENT_MARGIN`` seconds, which
    is what bounds a wait on a server that stopped answering altogether.
    """

    connect: int = 3
    statement: int = 2
    pool: int = 3
    keepalives_idle: int = 30
    tcp_user_timeout: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        return cls(connect=settings.database_connect_timeout,
                   statement=settings.database_statement_timeout,
                   pool=settings.database_pool_timeout,
                   keepalives_idle=settings.database_keepalives_idle,
                   tcp_user_timeout=settings.database_tcp_user_timeout)

    def without_statement_bound(self) -> Timeouts:
        """The same, with no bound on statements (schema migrations)."""
        return Timeouts(self.connect, 0, self.pool, self.keepalives_idle, self.tcp_user_timeout)


# The client waits this much longer than the server's statement_timeout, so that a
# slow statement on a live server is cancelled by the server (the connection stays
# usable) rather than abandoned by the client (the connection is lost).
CLIENT_MARGIN = 1.0
# Keepalive probes after keepalives_idle seconds of silence, this often, this many
# times, before the kernel declares an idle pooled connection dead.
KEEPALIVES_INTERVAL = 10
KEEPALIVES_COUNT = 3


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose every exchange with the server has a deadline.

    libpq has no read timeout: a server (or a network path) that stops answering
    holds the caller forever. psycopg's wait loop takes a timeout; past it, the
    protocol is mid-stream, so the connection is closed (the pool replaces it)
    and the caller gets an OperationalError, which the web answers with a 503.
    """

    operation_timeout: float | None = None

    def wait(self, gen, interval=0.1, timeout=None):
        try:
            return super().wait(gen, interval, self.operation_timeout if timeout is None
                                else timeout)
        except pg_errors._WaitTimeout:  # psycopg raises this private subclass of OperationalError
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.operation_timeout}s") from None


def _bounded_connect(timeouts: Timeouts):
    def connect(_dialect, _record, cargs, cparams):
        connection = BoundedConnection.connect(*cargs, **cparams)
        if timeouts.statement:
            connection.operation_timeout = timeouts.statement + CLIENT_MARGIN
        return connection

    return connect


def connect_args(timeouts: Timeouts) -> dict[str, Any]:
    """libpq parameters: bounded connection set-up, statements, and dead-peer detection."""
    arguments: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": timeouts.keepalives_idle,
        "keepalives_interval": KEEPALIVES_INTERVAL,
        "keepalives_count": KEEPALIVES_COUNT,
        # Milliseconds sent data may stay unacknowledged before the kernel drops the connection.
        "tcp_user_timeout": timeouts.tcp_user_timeout * 1000,
    }
    if timeouts.connect:
        arguments["connect_timeout"] = timeouts.connect
    if timeouts.statement:
        arguments["options"] = f"-c statement_timeout={timeouts.statement * 1000}"
    return arguments


class Database:
    """Owns the engine; hands out sessions (one per request, one per CLI command).

    Statement parameters are left out of SQL errors and SQL logs: they carry
    password hashes, message bodies with codes, and personal data. On
    PostgreSQL every wait is bounded (``Timeouts``): opening a connection,
    taking one from the pool, and every exchange on it.
    """

    def __init__(self, url: str, timeouts: Timeouts | None = None, *, create: bool = False):
        self.url = url
        self.timeouts = timeouts or Timeouts()
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False},
                                   hide_parameters=True)
            event.listen(engine, "connect", _prepare_sqlite)
            if not create:
                event.listen(engine, "do_connect", _open_existing_file)
        else:
            engine = create_engine(
                url, pool_size=10, max_overflow=10, hide_parameters=True,
                pool_timeout=self.timeouts.pool or None,
                connect_args=connect_args(self.timeouts))
            if engine.dialect.driver == "psycopg":
                event.listen(engine, "do_connect", _bounded_connect(self.timeouts))
            event.listen(engine, "checkout", _replace_if_closed_by_server)
        self.engine: Engine = engine
        # Readiness checks run here, so that the probe answers in time whatever the
        # database does; two threads at most, however many checks are stuck.
        self._probes: ThreadPoolExecutor | None = None
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False, info={DATABASE: self})
        # Same pool, each statement its own transaction: no BEGIN and ROLLBACK around reads.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.reader_sessionmaker = sessionmaker(self._autocommit, expire_on_commit=False,
                                                info={AUTOCOMMIT: True, DATABASE: self})
        self.statement_connections = StatementConnections(engine)

    def session(self) -> Session:
        return self.sessionmaker()

    @contextmanager
    def migrating(self, *, create: bool = False) -> Iterator[Engine]:
        """An engine for migrations: its statements may run as long as a migration needs (an
        index on a big table); connecting stays bounded. With ``create``, a SQLite file that does
        not exist yet is made: upgrading is how a database comes to be."""
        migrating = Database(self.url, self.timeouts.without_statement_bound(), create=create)
        try:
            yield migrating.engine
        finally:
            migrating.engine.dispose()

    def answers(self, within: float) -> bool:
        """Whether the database runs a trivial query within ``within`` seconds."""
        if self._probes is None:
            self._probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="db-probe")
        future = self._probes.submit(self._select_one)
        try:
            return future.result(timeout=within)
        except FutureTimeout:
            return False

    def _select_one(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready"; the cause is in the server's logs
            return False
        return True

    def reader(self) -> Session:
        """A session whose statements each commit on their own: one round trip per statement,
        none around them.

        Under READ COMMITTED each statement sees its own snapshot anyway, so reads
        outside a transaction see what they would inside one. Nothing around a write
        can be rolled back: each write must be whole in one statement (``idp.oidc.ledger``).
        """
        return self.reader_sessionmaker()

    def statements(self) -> Statements:
        """Statements that each commit on their own, as a ``reader``'s do, for one request."""
        return Statements(self)

    def autocommit_connection(self) -> Connection:
        """A pooled connection whose statements each commit on their own, without a session."""
        return self._autocommit.connect()


class StatementConnections:
    """The driver's connections ``Statements`` runs its statements on (PostgreSQL), each in
    autocommit, kept between requests rather than handed back to the pool after each.

    A request's first statement takes one (the most recently given back, checked as the pool
    checks at checkout: ``closed_by_server``); the request gives it back at teardown. Taking
    and giving back here costs a lock and a poll(); through the pool, with autocommit set on
    and off each time, it cost some 45 µs of CPU a request, a tenth of an introspection
    (bench/RESULTS.md). At most ``keep`` wait here, at least the threads of a production
    worker; the others go back to the pool as its other users expect them (in transactions).
    The connections kept count as checked out of the pool, whose size allows for them.
    """

    def __init__(self, engine: Engine, keep: int = 4):
        self.engine = engine
        self.keep = keep
        self._idle: list[Any] = []  # the pool's proxies of psycopg connections, in autocommit
        self._lock = threading.Lock()
        # A disposed engine starts again from new connections, those kept here as its pool's.
        event.listen(engine, "engine_disposed", lambda _engine: self.discard())

    def take(self) -> Any:
        """A connection in autocommit, kept or from the pool (its errors are the driver's)."""
        while True:
            with self._lock:
                kept = self._idle.pop() if self._idle else None
            if kept is None:
                break
            if not closed_by_server(kept.driver_connection):
                return kept
            kept.invalidate()
        proxy: Any = self.engine.raw_connection()
        proxy.driver_connection.autocommit = True
        return proxy

    def give_back(self, proxy: Any) -> None:
        """Keep ``proxy`` for a next request, or return it to the pool in its usual state; one
        that is closed, or was left mid-exchange, is discarded."""
        connection = proxy.driver_connection
        if connection.info.transaction_status != TransactionStatus.IDLE:
            proxy.invalidate()
            return
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(proxy)
                return
        connection.autocommit = False
        proxy.close()

    def discard(self) -> None:
        """Close the connections kept."""
        with self._lock:
            idle, self._idle = self._idle, []
        for proxy in idle:
            proxy.invalidate()


class Statements:
    """Statements that each stand alone, for one request (``idp.oidc.ledger``): each is one
    round trip, committed on its own, outside any transaction.

    On PostgreSQL ``first`` runs its statement prepared, on a driver's connection kept for such
    statements (``StatementConnections``): SQLAlchemy's execution machinery per statement costs
    more than the statement itself. The statement is written with SQLAlchemy Core and compiled
    once; its errors are SQLAlchemy's, as on any other path, and a connection that failed is not
    kept. Elsewhere (SQLite), and for statements run one after the other
    (``connection``), a pooled SQLAlchemy connection.
    """

    def __init__(self, database: Database):
        self.database = database
        self.postgresql = database.engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._driver: Any = None  # a kept psycopg connection's proxy (StatementConnections)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.database.autocommit_connection()
        return self._connection

    @contextmanager
    def immediate(self) -> Iterator[Connection]:
        """``connection`` (SQLite), for statements that stand or fall together: the block's are one
        transaction, rolled back if it raises. Begun IMMEDIATE, it takes the database's write
        lock at its start, so that no other request sees any of it before all of it is
        committed, nor writes in between. (PostgreSQL has such steps as one data-modifying
        WITH statement, which SQLite lacks.)"""
        connection = self.connection
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            driver: Any = connection.connection.driver_connection
            # SQLite ends the transaction itself on some errors (a full disk, an interrupt).
            if driver.in_transaction:
                connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")

    def first(self, statement: Any, params: dict[str, Any]) -> Row[Any] | None:
        """The first row ``statement`` returns with ``params``, or None."""
        if not self.postgresql:
            return self.connection.execute(statement, params).first()
        compiled, row_type = _compiled(statement, self.database.engine)
        try:
            if self._driver is None:
                self._driver = self.database.statement_connections.take()
            cursor = _kept_cursor(self._driver)
            values = compiled.construct_params(params)
            _announce(self.database.engine, None, cursor, compiled.string, values)
            cursor.execute(compiled.string, values, prepare=True)
            found = cursor.fetchone()
        except psycopg.Error as error:
            if self._driver is not None and _lost(self.database.engine, error, self._driver):
                self._driver.invalidate()
                self._driver = None
            raise DBAPIError.instance(compiled.string, None, error, psycopg.Error, hide_parameters=True,
                                      dialect=self.database.engine.dialect) from None
        if found is None:
            return None
        if row_type[0] is None:
            row_type[0] = namedtuple("Row", [column.name for column in cursor.description or ()])
        return cast("Row[Any]", row_type[0](*found))

    def close(self) -> None:
        """Give the connections back: the driver's to be kept, SQLAlchemy's to the pool."""
        if self._driver is not None:
            driver, self._driver = self._driver, None
            self.database.statement_connections.give_back(driver)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


def statements_beside(session: Session) -> Statements:
    """``Statements`` on the database of ``session`` (one of a ``Database``'s), outside its
    transaction: what they read is what others committed, whatever the session has done."""
    return session.info[DATABASE].statements()


def write(session: Session, statement: Any, params: dict[str, Any]) -> int:
    """Run a Core INSERT, UPDATE or DELETE with ``params`` in the session's transaction; the rows
    it changed.

    On PostgreSQL it runs prepared, on the transaction's own connection and the cursor kept on
    it (``_kept_cursor``), as ``Statements.first`` does outside a transaction: SQLAlchemy's
    execution machinery costs a write more than the write itself (bench/RESULTS.md). What that
    machinery would do is done here: the columns' Python-side defaults filled in, each value
    made ready for its type, the session told that it wrote (``WROTE``, for the request's
    deadline), a driver's error raised as SQLAlchemy's. Elsewhere (SQLite), ``session.execute``.

    ``statement`` is built once (a module's constant) and given the same keys at every call: its
    prepared form is kept for each set of keys, for the process's life.
    """
    session.info[WROTE] = True
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return rowcount(session.execute(statement, params))
    prepared = _prepared_write(statement, tuple(params), connection.engine)
    return _run_prepared(connection, prepared.sql, prepared.parameters(params)).rowcount


def load(session: Session, model: type[_Model], statement: Any, params: dict[str, Any], *,
         fresh: bool = False) -> _Model | None:
    """The ``model`` object of the first row ``statement`` finds with ``params``, in the session,
    as a query of the ORM would give it; None if there is none.

    ``statement`` selects the columns of the model's table (``select(*table.columns)``), or
    inserts a row and returns them (``insert(table).returning(*table.columns)``: the new object,
    the session told that it wrote, as ``write`` does); it is built once (a module's constant) and
    given the same keys at every call. On PostgreSQL it runs prepared in the session's
    transaction, as ``write`` does, and the object is made from its row: the ORM's loading costs an
    account's sign-in more than the statement does (bench/RESULTS.md). What the ORM would do is
    done here: pending changes flushed first, each value given its type's result processing, and
    the object the session already holds for that row returned as it is, or, ``fresh``, given the
    row's values (the ORM's ``populate_existing``: a row read under a lock). Elsewhere (SQLite),
    the statement runs through SQLAlchemy and the object is made the same way.
    """
    if session.autoflush:
        session.flush()
    if statement.is_dml:
        session.info[WROTE] = True
    connection = session.connection()
    reading = _prepared_read(statement, model, connection.engine)
    if connection.dialect.name == "postgresql":
        cursor = _run_prepared(connection, reading.sql, reading.compiled.construct_params(params))
        found = cursor.fetchone()
        if found is None:
            return None
        values = {key: process(value) if process else value
                  for (key, process), value in zip(reading.attributes, found, strict=True)}
    else:
        row = connection.execute(statement, params).first()
        if row is None:
            return None
        values = {key: value for (key, _process), value in zip(reading.attributes, row, strict=True)}
    held = session.identity_map.get(reading.identity(values))
    if held is not None:
        if fresh:
            for key, value in values.items():
                set_committed_value(held, key, value)
        return cast("_Model", held)
    loaded = from_row(model, values)
    make_transient_to_detached(loaded)
    session.add(loaded)
    return loaded


def from_row(model: type[_Model], values: dict[str, Any]) -> _Model:
    """An object of ``model`` made from its row's ``values`` (by attribute) as the ORM's loading
    makes one: without its constructor, the values put in its state as loaded, without events or
    history. It is in no session."""
    mapper: Mapper[Any] = inspect(model)
    if not mapper.configured:
        # The ORM sets its attributes up at a first query or object; this may come first.
        configure_mappers()
    made = mapper.class_manager.new_instance()
    instance_dict(made).update(values)
    return cast("_Model", made)


def _run_prepared(connection: Connection, sql: str, params: Any) -> psycopg.Cursor[Any]:
    """``sql`` run prepared on the driver's connection under ``connection``, on its kept cursor;
    a driver's error raised as SQLAlchemy's, the connection dropped if it was lost."""
    proxy: Any = connection.connection
    try:
        cursor = _kept_cursor(proxy)
        _announce(connection.engine, connection, cursor, sql, params)
        cursor.execute(sql, params, prepare=True)
    except psycopg.Error as error:
        if _lost(connection.engine, error, proxy):
            connection.invalidate()
        raise DBAPIError.instance(sql, None, error, psycopg.Error, hide_parameters=True,
                                  dialect=connection.dialect) from None
    return cursor


def _announce(engine: Engine, connection: Connection | None, cursor: Any, sql: str, params: Any) -> None:
    """SQLAlchemy's ``before_cursor_execute`` for a statement run on the driver, to the engine's
    listeners if it has any (the tests' and the bench's counts, a tracer), as SQLAlchemy's own
    execution tells them; ``connection`` is None outside a SQLAlchemy connection
    (``Statements.first``), and what a listener answers is not used."""
    for listener in engine.dispatch.before_cursor_execute:
        listener(connection, cursor, sql, params, None, False)


@dataclass(frozen=True)
class PreparedWrite:
    """A write statement compiled for the keys it is given: its SQL, the columns whose value
    comes from a Python-side default, and the bound values' conversions for the driver."""

    sql: str
    compiled: Any
    defaults: tuple[tuple[str, Callable[[], Any]], ...]
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, params: dict[str, Any]) -> dict[str, Any]:
        values = self.compiled.construct_params(
            {**params, **{name: default() for name, default in self.defaults}})
        for name, process in self.processors:
            values[name] = process(values[name])
        return values


# (statement, the keys of its values) -> its prepared form. The statements are built once per
# process, each given the same keys at every call, so this stays small.
_WRITES: dict[tuple[Any, tuple[str, ...]], PreparedWrite] = {}


def _prepared_write(statement: Any, keys: tuple[str, ...], engine: Engine) -> PreparedWrite:
    found = _WRITES.get((statement, keys))
    if found is None:
        with _COMPILING:
            found = _WRITES.setdefault((statement, keys), _prepare_write(statement, keys, engine))
    return found


def _prepare_write(statement: Any, keys: tuple[str, ...], engine: Engine) -> PreparedWrite:
    dialect = engine.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    defaults: list[tuple[str, Callable[[], Any]]] = []
    for column, default in ([(column, column.default) for column in compiled.insert_prefetch]
                            + [(column, column.onupdate) for column in compiled.update_prefetch]):
        if default.is_scalar:
            defaults.append((column.key, functools.partial(_same, default.arg)))
        elif default.is_callable:
            # SQLAlchemy wraps a default that takes no argument into one that takes its context.
            defaults.append((column.key, functools.partial(default.arg, None)))
        else:
            raise TypeError(f"{column}: a default that write() cannot compute")
    processors = []
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return PreparedWrite(compiled.string, compiled, tuple(defaults), tuple(processors))


@dataclass(frozen=True)
class PreparedRead:
    """A select of a model's columns compiled: its SQL, and for each column the model's attribute
    with the conversion of its value from the driver's."""

    sql: str
    compiled: Any
    attributes: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    mapper: Mapper[Any]
    # The attributes of the primary key, in its order.
    key: tuple[str, ...]

    def identity(self, values: dict[str, Any]) -> Any:
        """The session's key for the object of these values."""
        return self.mapper.identity_key_from_primary_key(tuple(values[name] for name in self.key))


# (statement, model, the database's kind) -> its prepared form; the statements are a module's
# constants. A process may use more than one kind of database (the tests do), each with its SQL.
_READS: dict[tuple[Any, type, type], PreparedRead] = {}


def _prepared_read(statement: Any, model: type, engine: Engine) -> PreparedRead:
    key = (statement, model, type(engine.dialect))
    found = _READS.get(key)
    if found is None:
        with _COMPILING:
            found = _READS.setdefault(key, _prepare_read(statement, model, engine))
    return found


def _prepare_read(statement: Any, model: type, engine: Engine) -> PreparedRead:
    dialect = engine.dialect
    mapper: Mapper[Any] = inspect(model)
    attributes = []
    for column in statement.exported_columns:
        kind = column.type.dialect_impl(dialect)
        attributes.append((mapper.get_property_by_column(column).key, kind.result_processor(dialect, None)))
    compiled = statement.compile(dialect=dialect)
    key = tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key)
    return PreparedRead(compiled.string, compiled, tuple(attributes), mapper, key)


def _same(value: Any) -> Any:
    return value


def _lost(engine: Engine, error: psycopg.Error, proxy: Any) -> bool:
    """Whether ``error`` lost the connection of ``proxy``, as SQLAlchemy judges: such a
    connection is not used again; one whose statement was refused (a constraint, a time limit)
    is."""
    return engine.dialect.is_disconnect(cast("Any", error), proxy.driver_connection, None)


# The pool's record of a connection keeps, under this key, the cursor its statements run on.
_CURSOR = "idp.statements_cursor"


def _kept_cursor(proxy: Any) -> psycopg.Cursor[Any]:
    """The cursor ``Statements`` and ``write`` run their statements on, on the connection of
    ``proxy``: made once per connection, as a cursor per statement costs a fifth of a statement's
    CPU."""
    connection = proxy.driver_connection
    cursor = proxy.info.get(_CURSOR)
    if cursor is None or cursor.connection is not connection or cursor.closed:
        cursor = proxy.info[_CURSOR] = connection.cursor()
    return cursor


# Statement -> its compiled form and the type of its rows (made at its first answer). The
# statements are built once per process (idp.oidc.ledger), so this stays small.
_COMPILED: dict[Any, tuple[Any, list[Any]]] = {}
_COMPILING = threading.Lock()


def _compiled(statement: Any, engine: Engine) -> tuple[Any, list[Any]]:
    found = _COMPILED.get(statement)
    if found is None:
        with _COMPILING:
            found = _COMPILED.setdefault(statement, (statement.compile(dialect=engine.dialect), [None]))
    return found

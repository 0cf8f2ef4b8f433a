"""Shared fixtures: the app on the real stores when configured, factories, a CLI runner.

IDP_TEST_DATABASE_URL (PostgreSQL) and IDP_TEST_REDIS_URL point the suite at
real servers; .ci/run sets both. Without them the suite runs on the embedded
default (SQLite file, in-process store) and says so; under CI=true their
absence is an error, never a silent downgrade.

The suite runs in parallel processes (pytest-xdist's workers, ``-n`` in
pyproject.toml). Each worker has a PostgreSQL database and a Redis database of
its own, derived from those two URLs (``worker_database``, ``worker_redis``): a
test's reset never empties another's tables. A test marked ``alone`` (timings
compared, or answers held to wall-clock bounds) runs while no other test does
(``Turns``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.seed import create_database
from idp import create_app, schema
from idp.cli import main
from idp.db import Base
from idp.demo.setup import DemoServers, build_portals, prepare
from idp.keystore import KeyStore
from tests import factories
from tests.flows import Flow

pytest_plugins = ["tests.servers"]

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# "gw0", "gw1", … in pytest-xdist's workers; absent when the suite runs in one process.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else 0
# Redis databases a worker takes, counting down from the configured one: the suite's, the bench's.
REDIS_DATABASES_PER_WORKER = 2


def worker_database(url: str, name: str | None = None) -> str:
    """``url`` on this worker's database: ``name`` (by default the URL's own), suffixed with the
    worker's id under pytest-xdist."""
    if not url:
        return url
    parsed = make_url(url)
    database = name or parsed.database or ""
    if WORKER:
        database = f"{database}_{WORKER}"
    return parsed.set(database=database).render_as_string(hide_password=False)


def worker_redis(url: str, offset: int = 0) -> str:
    """``url`` on this worker's Redis database, ``offset`` beyond its first one. Worker n takes
    the ``REDIS_DATABASES_PER_WORKER`` databases counting down from the configured one, past
    those of the workers before it (modulo Redis' sixteen)."""
    if not url:
        return url
    parts = urlsplit(url)
    index = (int(parts.path.strip("/") or 0) - WORKER_INDEX * REDIS_DATABASES_PER_WORKER - offset) % 16
    return urlunsplit(parts._replace(path=f"/{index}"))


# The servers the suite was pointed at, as configured, then this process's databases on them.
CONFIGURED_DATABASE_URL = os.environ.get("IDP_TEST_DATABASE_URL", "")
CONFIGURED_REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "")
DATABASE_URL = worker_database(CONFIGURED_DATABASE_URL)
REDIS_URL = worker_redis(CONFIGURED_REDIS_URL)


def pytest_configure(config):
    if IN_CI and not (DATABASE_URL and REDIS_URL):
        raise pytest.UsageError(
            "CI=true needs IDP_TEST_DATABASE_URL and IDP_TEST_REDIS_URL (run the suite through .ci/run)"
        )


def pytest_report_header(config):
    database = DATABASE_URL.split("@")[-1] if DATABASE_URL else "embedded SQLite (no IDP_TEST_DATABASE_URL)"
    store = REDIS_URL.split("@")[-1] if REDIS_URL else "in-process store (no IDP_TEST_REDIS_URL)"
    return [f"idp database: {database}", f"idp store: {store}"]


def pytest_terminal_summary(terminalreporter):
    if not (DATABASE_URL and REDIS_URL):
        terminalreporter.write_line(
            "NOTE: ran on the embedded default; PostgreSQL/Redis behaviour was not exercised "
            "(set IDP_TEST_DATABASE_URL and IDP_TEST_REDIS_URL, or run .ci/run)."
        )


class Turns:
    """Tests of the suite's processes share the machine, but for those marked ``alone``, which
    wait until no other test runs and keep the others from starting meanwhile.

    Two ``flock`` locks on files all the processes of a run share: the room (every test holds
    it, shared; one marked ``alone``, exclusive) and its door, which a test marked ``alone``
    holds from before it waits for the room until it is done, and every other test goes
    through before it takes the room: no stream of other tests keeps one marked ``alone``
    waiting.
    """

    def __init__(self, directory: Path):
        self.door = (directory / "turns.door").open("a")
        self.room = (directory / "turns.room").open("a")

    @contextmanager
    def turn(self, alone: bool) -> Iterator[None]:
        fcntl.flock(self.door, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(self.door, fcntl.LOCK_UN)
        fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.door, fcntl.LOCK_UN)

    def close(self) -> None:
        self.door.close()
        self.room.close()


@pytest.fixture(scope="session")
def _turns(tmp_path_factory) -> Iterator[Turns | None]:
    if not WORKER:
        yield None
        return
    # The run's temporary directory, which holds each process's own (pytest-xdist's advice).
    turns = Turns(tmp_path_factory.getbasetemp().parent)
    yield turns
    turns.close()


@pytest.fixture(autouse=True)
def _turn(request, _turns) -> Iterator[None]:
    if _turns is None:
        yield
        return
    with _turns.turn(alone=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = DATABASE_URL or f"sqlite:///{tmp_path_factory.mktemp('db') / 'idp.sqlite3'}"
    if url.startswith("postgresql") and WORKER:
        create_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    schema.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def keys_template(tmp_path_factory) -> Path:
    """A key directory initialised once (RSA generation is slow), copied per test."""
    directory = tmp_path_factory.mktemp("keys-template")
    KeyStore(directory, prepublish_seconds=0, retain_seconds=3600).ensure_initialized()
    return directory


def provider_settings(database_url: str, keys_dir: Path, redis_url: str = REDIS_URL) -> dict:
    """The provider's settings for tests (and the screenshot tour): cheap hashing, outbox page."""
    return {
        "env": "development",
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "base_url": "http://localhost",
        "database_url": database_url,
        "redis_url": redis_url,
        "keys_dir": str(keys_dir),
        "tenants_dir": str(ROOT / "config" / "tenants"),
        "key_prepublish_seconds": 0,
        # Cheap hashing keeps the suite fast; the hasher's own tests use real costs.
        "argon2_time_cost": 1,
        "argon2_memory_cost": 1024,
        "outbox_page": True,
        # Each request tries what it queued right after its commit, so that a test reads
        # the code it asked for as soon as the page has answered, with no worker running.
        # Production's "worker" mode has tests of its own (tests/channels/test_worker_delivery.py).
        "message_delivery": "inline",
    }


@pytest.fixture
def settings(database_url, keys_template, tmp_path) -> dict:
    keys_dir = tmp_path / "keys"
    shutil.copytree(keys_template, keys_dir)
    return provider_settings(database_url, keys_dir)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    _reset(app)


def _reset(app) -> None:
    services = app.extensions["idp"]
    with services.database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    if REDIS_URL:
        services.store.client.flushdb()
        services.store.close()  # its sockets, not left to the garbage collector
    services.database.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class IdpCliRunner(FlaskCliRunner):
    """Invokes the `idp` command group against the test app."""

    def invoke(self, cli=None, args=None, **kwargs):
        return super().invoke(cli or main, args, **kwargs)


@pytest.fixture
def runner(app):
    return IdpCliRunner(app)


@pytest.fixture
def db(app):
    """A database session of the test's own (no app context: requests must not share `g`)."""
    session = app.extensions["idp"].database.session()
    yield session
    session.close()


@pytest.fixture
def make(app, db):
    """Factories bound to the test database: make.account(...), make.client(...)."""
    return factories.Factories(app, db)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# How many sets of free ports ``on_free_ports`` tries before it gives up.
PORT_TRIES = 5
T = TypeVar("T")


def on_free_ports(start: Callable[[], T]) -> T:
    """``start()``, which binds ports it finds free (``free_port``), again while it finds one taken.

    A port found free may be taken before it is bound (by another test worker's server, or as
    the local port of some connection): other ports are then tried.
    """
    for _ in range(PORT_TRIES - 1):
        try:
            return start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    return start()


def listening(count: int = 1, names: tuple[str, ...] = ()) -> tuple[DemoServers, list[int]]:
    """Threaded servers listening on ``count`` free local ports (``mount`` their apps once built),
    and those ports; ``names`` their names on their log lines, in order."""

    def bind() -> tuple[DemoServers, list[int]]:
        ports = [free_port() for _ in range(count)]
        return DemoServers("127.0.0.1", ports, names=dict(zip(ports, names, strict=False))), ports

    return on_free_ports(bind)


@contextmanager
def serving(app, name: str | None = None) -> Iterator[int]:
    """``app`` under the demo's threaded server on a free local port until the block ends (named
    ``name`` on its log lines); yields the port."""
    servers, [port] = listening(names=(name,) if name else ())
    servers.mount({port: app})
    servers.start()
    try:
        yield port
    finally:
        servers.stop()


@dataclass
class Live:
    """The provider and both demo portals, served on real local ports."""

    app: object
    base_url: str
    portals: dict[str, str]


def start_live(settings: dict, **overrides):
    servers, (port, malakoff, miel) = listening(3)
    portal_urls = {"malakoff": f"http://localhost:{malakoff}", "miel": f"http://localhost:{miel}"}
    app = create_app({**settings, "base_url": f"http://localhost:{port}", **overrides})
    portals = prepare(app, portal_urls)
    portal_apps = build_portals(app, portals)
    servers.mount({port: app, malakoff: portal_apps["malakoff"], miel: portal_apps["miel"]})
    servers.start()
    return Live(app, f"http://localhost:{port}", portal_urls), servers


@pytest.fixture
def live(settings):
    """A running provider and portals; cookies without Secure so plain HTTP clients keep them."""
    running, servers = start_live(settings, cookie_secure=False)
    yield running
    servers.stop()
    _reset(running.app)


@pytest.fixture
def rp(make):
    """A first-party confidential client of Malakoff."""
    return make.client("malakoff")


@pytest.fixture
def member(make):
    return make.account("malakoff")


@pytest.fixture
def flow(client, rp, member):
    """A Malakoff member's browser and a portal, ready to sign in."""
    return Flow(client, "malakoff", rp, member)

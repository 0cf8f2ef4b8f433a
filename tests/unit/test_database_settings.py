"""The bounded waits on PostgreSQL: settings with defaults, IDP_* overrides, validated, and
handed to libpq and the pool as they say (SPEC §11)."""

from __future__ import annotations

import pytest

from idp.config import ConfigError, load_settings
from idp.db import Database, Timeouts, connect_args

POSTGRES = "postgresql+psycopg://idp@db.invalid/idp"


def test_defaults_bound_every_wait_to_a_few_seconds():
    timeouts = Timeouts.from_settings(load_settings(environ={}))
    assert timeouts == Timeouts(connect=3, statement=2, pool=3, keepalives_idle=30,
                                tcp_user_timeout=10)


def test_environment_overrides_reach_libpq_and_the_pool():
    settings = load_settings(environ={
        "IDP_DATABASE_CONNECT_TIMEOUT": "5", "IDP_DATABASE_STATEMENT_TIMEOUT": "7",
        "IDP_DATABASE_POOL_TIMEOUT": "4", "IDP_DATABASE_KEEPALIVES_IDLE": "20",
        "IDP_DATABASE_TCP_USER_TIMEOUT": "9"})
    database = Database(POSTGRES, Timeouts.from_settings(settings))
    assert database.engine.pool.timeout() == 4  # type: ignore[attr-defined]
    assert connect_args(database.timeouts) == {
        "keepalives": 1, "keepalives_idle": 20, "keepalives_interval": 10, "keepalives_count": 3,
        "tcp_user_timeout": 9000, "connect_timeout": 5, "options": "-c statement_timeout=7000"}


def test_migrations_run_without_a_statement_bound():
    unbounded = Timeouts().without_statement_bound()
    assert unbounded.statement == 0
    assert "options" not in connect_args(unbounded)


@pytest.mark.parametrize(("name", "value"), [
    ("IDP_DATABASE_CONNECT_TIMEOUT", "0"), ("IDP_DATABASE_POOL_TIMEOUT", "-1"),
    ("IDP_DATABASE_KEEPALIVES_IDLE", "601"), ("IDP_DATABASE_TCP_USER_TIMEOUT", "0"),
    ("IDP_DATABASE_STATEMENT_TIMEOUT", "-1"), ("IDP_DATABASE_STATEMENT_TIMEOUT", "3601"),
    ("IDP_DATABASE_CONNECT_TIMEOUT", "three"),
])
def test_bad_values_stop_the_start_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: value})

"""The suite's processes (pytest-xdist) each work on databases of their own."""

from __future__ import annotations

import pytest

from tests import conftest

POSTGRES = "postgresql+psycopg://postgres:secret@127.0.0.1:5432/idp_test"


@pytest.fixture
def third_process(monkeypatch):
    monkeypatch.setattr(conftest, "WORKER", "gw2")
    monkeypatch.setattr(conftest, "WORKER_INDEX", 2)


def test_a_process_takes_the_database_named_after_it(third_process):
    assert conftest.worker_database(POSTGRES) == "postgresql+psycopg://postgres:secret@127.0.0.1:5432/idp_test_gw2"
    assert conftest.worker_database(POSTGRES, "idp_bench_suite").endswith("/idp_bench_suite_gw2")
    assert conftest.worker_database("") == ""


def test_a_process_takes_two_redis_databases_below_those_of_the_processes_before_it(third_process):
    assert conftest.worker_redis("redis://127.0.0.1:6379/15") == "redis://127.0.0.1:6379/11"
    assert conftest.worker_redis("redis://127.0.0.1:6379/15", offset=1) == "redis://127.0.0.1:6379/10"
    # Counted modulo Redis' sixteen databases; no number is database 0.
    assert conftest.worker_redis("redis://127.0.0.1:6379/2") == "redis://127.0.0.1:6379/14"
    assert conftest.worker_redis("redis://:pw@127.0.0.1:6379") == "redis://:pw@127.0.0.1:6379/12"


def test_in_one_process_the_configured_databases_are_used(monkeypatch):
    monkeypatch.setattr(conftest, "WORKER", "")
    monkeypatch.setattr(conftest, "WORKER_INDEX", 0)
    assert conftest.worker_database(POSTGRES) == POSTGRES
    assert conftest.worker_redis("redis://127.0.0.1:6379/15") == "redis://127.0.0.1:6379/15"
    assert conftest.worker_redis("redis://127.0.0.1:6379/15", offset=1) == "redis://127.0.0.1:6379/14"

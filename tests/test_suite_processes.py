"""The suite's processes (pytest-xdist) each work on databases of their own."""

from __future__ import annotations

import threading
import time

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


def test_a_test_marked_alone_waits_for_the_others_and_keeps_new_ones_waiting(tmp_path):
    # Each Turns opens the files anew: its locks are apart from another's, as a process's are.
    running, alone, latecomer = (conftest.Turns(tmp_path) for _ in range(3))
    events: list[str] = []

    def take(turns: conftest.Turns, name: str, *, is_alone: bool) -> None:
        with turns.turn(alone=is_alone):
            events.append(name)

    try:
        with running.turn(alone=False):
            waiting = threading.Thread(target=take, args=(alone, "alone"), kwargs={"is_alone": True})
            waiting.start()
            time.sleep(0.3)
            # The door is held: a test that comes now waits behind the one marked alone.
            late = threading.Thread(target=take, args=(latecomer, "latecomer"), kwargs={"is_alone": False})
            late.start()
            time.sleep(0.3)
            assert events == []  # the test marked alone waits for the one running
            events.append("running done")
        waiting.join(5)
        late.join(5)
        assert events == ["running done", "alone", "latecomer"]
    finally:
        for turns in (running, alone, latecomer):
            turns.close()

"""``python -m bench.cpu`` drives the code flows as bench/run's browsers do, and says what each
step of a flow costs: the code by email is asked, sent by ours' outbox worker, typed and
accepted, and the tokens come out at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGURED_REDIS_URL, DATABASE_URL, REDIS_URL, worker_database, worker_redis

pytestmark = pytest.mark.skipif(
    not (DATABASE_URL and REDIS_URL),
    reason="bench.cpu runs on PostgreSQL and Redis only (IDP_TEST_DATABASE_URL, IDP_TEST_REDIS_URL)")

ROOT = Path(__file__).resolve().parent.parent


def test_the_code_flow_by_email_is_measured_step_by_step():
    # The bench's own database and Redis database, on the suite's servers: never the suite's.
    database = worker_database(DATABASE_URL, "idp_bench_suite")
    redis = worker_redis(CONFIGURED_REDIS_URL, offset=1)
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "bench.cpu", "--scenarios", "flow+password+otp", "--requests", "20",
         "--repeat", "1", "--no-callgrind", "--database-url", database,
         "--redis-url", redis],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    row = next(line for line in lines if line.startswith("flow+password+otp"))
    # Two flows timed, each one's token request answered 200 (a step that fails raises).
    assert row.split()[1] == "2" and row.endswith("200x2"), row
    steps = [line.split("ms", 1)[1].strip() for line in lines if line.strip().endswith(
        ("/authorize", "/login", "/login/code", "/login/code/verify", "/token"))]
    assert steps == ["GET /authorize", "POST /login", "GET /login/code", "POST /login/code",
                     "GET /login/code/verify", "POST /login/code/verify", "POST /token"]
    # And what the worker's process spent a flow, sending the code's email.
    worker = [line.split("ms", 1)[0] for line in lines
              if line.strip().endswith("the outbox worker (its own process)")]
    assert len(worker) == 1 and float(worker[0]) >= 0


def test_the_functions_named_are_marked_as_they_start_and_end_while_the_requests_run(tmp_path):
    database = worker_database(DATABASE_URL, "idp_bench_suite")
    redis = worker_redis(CONFIGURED_REDIS_URL, offset=1)
    events = tmp_path / "events.json"
    # The child callgrind would run, run here without it: its marks are calls to getppid.
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "bench.cpu", "--callgrind-child", "--events", str(events),
         "--scenarios", "flow", "--requests", "20", "--database-url", database, "--redis-url", redis,
         "--functions", "idp.signin.views:complete,idp.sessions:StoreSessionInterface._endpoint"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    marked = [tuple(event) for event in json.loads(events.read_text())]
    # Two flows counted, after a warm-up that is not: each signs in once and sends its session
    # cookie to the sign-in's post (a static method, still called as one).
    complete, endpoint = "idp.signin.views:complete", "idp.sessions:StoreSessionInterface._endpoint"
    assert marked[0] == ("begin", "flow") and marked[-1] == ("end", "flow")
    assert marked.count(("enter", complete)) == marked.count(("exit", complete)) == 2
    assert marked.count(("enter", endpoint)) == marked.count(("exit", endpoint)) >= 2

"""bench/: its command line and its report (the bench itself runs apart, with bench/run)."""

from __future__ import annotations

import pytest

from bench.options import parse_args
from bench.report import Memory, Result, Run, ratio, render


def test_defaults_are_a_full_run_on_the_bench_database():
    options = parse_args([])
    assert options.seconds == 10
    assert options.connections == 32
    assert options.soak_requests == 100_000
    assert options.database_url.endswith("/idp_bench")
    assert options.redis_url.endswith("/10")
    assert options.scenarios[0] == "discovery"
    assert len(options.scenarios) == 10


def test_quick_is_short_unless_told_otherwise():
    assert parse_args(["--quick"]).seconds == 2
    assert parse_args(["--quick"]).soak_requests == 10_000
    assert parse_args(["--quick", "--seconds", "5", "--soak", "0"]).seconds == 5
    assert parse_args(["--scenarios", "jwks, token"]).scenarios == ("jwks", "token")


@pytest.mark.parametrize("argv", [
    ["--database-url", "postgresql+psycopg://postgres@127.0.0.1:5432/idp_test"],
    ["--redis-url", "redis://127.0.0.1:6379/15"],
    ["--scenarios", "discovery,fastest"],
    ["--connections", "0"],
])
def test_refuses_what_belongs_to_others_or_makes_no_sense(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_report_gives_rates_percentiles_ratios_and_memory():
    run = Run(machine={}, settings={}, argon2_ms=20.0, driver_ceiling={"wrk": 40_000.0})
    run.results += [
        Result("jwks", "ours", 30_000, 10.0, 4.0, 9.5),
        Result("jwks", "peer", 60_000, 10.0, 2.0, 5.0),
        Result("flow+password", "ours", 450, 10.0, 600.0, 900.0, errors=2, request_p99_ms=120.0,
               notes=["first error: POST /login: 503"]),
    ]
    run.memory.append(Memory("ours", 100_000, [80.4, 81.6]))
    text = render(run)
    jwks = next(line for line in text.splitlines() if line.startswith("jwks"))
    assert jwks.split() == ["jwks", "req/s", "3,000", "4.0", "9.5", "0", "6,000", "2.0", "5.0", "0", "0.50"]
    flow = next(line for line in text.splitlines() if line.startswith("flow+password"))
    assert flow.split()[-1] == "-" and "2*" in flow.split()
    assert "ours flow+password: first error: POST /login: 503" in text
    assert "ours after 100,000 requests: 80, 82" in text
    assert "at most 50.0 password sign-ins/s per core" in text
    assert "ours flow+password: 45.0/s = 0.90 x that bound" in text
    assert ratio(run.results[0], None) is None

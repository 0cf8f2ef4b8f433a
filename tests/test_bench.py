"""bench/: its command line and its report (the bench itself runs apart, with bench/run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from bench import cpu, proc, seed, targets
from bench.options import parse_args
from bench.report import Memory, Result, Run, Turn, pooled, ratio, render
from idp.config import Settings


def test_defaults_are_a_full_run_on_the_bench_database():
    options = parse_args([])
    assert options.seconds == 10
    # Each scenario three times a side, ours and the peer taking turns; members enough for each round.
    assert options.rounds == 3
    assert options.members == 3 * 256
    assert options.connections == 32
    assert options.soak_requests == 100_000
    assert options.database_url.endswith("/idp_bench")
    assert options.redis_url.endswith("/10")
    assert options.scenarios[0] == "discovery"
    assert len(options.scenarios) == 10


def test_quick_is_short_unless_told_otherwise():
    assert parse_args(["--quick"]).seconds == 2
    assert parse_args(["--quick"]).rounds == 1
    assert parse_args(["--quick", "--rounds", "2"]).members == 2 * 64
    assert parse_args(["--quick"]).soak_requests == 10_000
    assert parse_args(["--quick", "--seconds", "5", "--soak", "0"]).seconds == 5
    assert parse_args(["--scenarios", "jwks, token"]).scenarios == ("jwks", "token")


@pytest.mark.parametrize("argv", [
    ["--database-url", "postgresql+psycopg://postgres@127.0.0.1:5432/idp_test"],
    ["--database-url", "postgresql+psycopg://postgres@127.0.0.1:5432/idp_test?application_name=idp_bench"],
    ["--database-url", "not a URL"],
    ["--redis-url", "redis://127.0.0.1:6379/15"],
    ["--scenarios", "discovery,fastest"],
    ["--connections", "0"],
    ["--rounds", "0"],
])
def test_refuses_what_belongs_to_others_or_makes_no_sense(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_bench_database_is_named_by_its_path_whatever_its_options():
    url = "postgresql+psycopg://postgres:p%2Fw@127.0.0.1:5432/idp_bench_perf?sslmode=disable"
    assert seed.database_name(url) == "idp_bench_perf"
    assert seed.is_bench_database(url)
    assert parse_args(["--database-url", url]).database_url == url
    assert seed.server_url(url).render_as_string(hide_password=False) == (
        "postgresql+psycopg://postgres:p%2Fw@127.0.0.1:5432/postgres?sslmode=disable")
    with pytest.raises(ValueError, match="not a bench database"):
        seed.reset_database(url.replace("idp_bench_perf", "idp_test"))


def test_report_gives_rates_percentiles_ratios_targets_and_memory():
    run = Run(machine={}, settings={}, argon2_ms=20.0, driver_ceiling={"wrk": 40_000.0})
    run.results += [
        Result("jwks", "ours", 30_000, 10.0, 4.0, 9.5),
        Result("jwks", "peer", 60_000, 10.0, 2.0, 5.0),
        Result("token", "ours", 4_000, 10.0, 8.0, 20.0, cpu_ms=1.2, postgres_cpu_ms=0.3),
        Result("token", "peer", 10_000, 10.0, 3.0, 9.0, cpu_ms=0.6),
        Result("userinfo", "ours", 22_000, 10.0, 1.0, 2.0),
        Result("userinfo", "peer", 20_000, 10.0, 1.0, 2.0),
        Result("flow", "ours", 300, 10.0, 50.0, 90.0),
        Result("flow", "peer", 1_000, 10.0, 20.0, 40.0),
        Result("flow+password", "ours", 450, 10.0, 600.0, 900.0, errors=2, request_p99_ms=120.0,
               notes=["first error: POST /login: 503"]),
        # Its bound read before each of its rounds.
        Result("flow+password+otp", "ours", 250, 10.0, 900.0, 1500.0, argon2_ms=22.0, argon2_cpu_ms=21.0,
               cpu_ms=35.0, round_rates=[20.0, 30.0]),
        # The peer's own argon2id, read the same way.
        Result("flow+password+otp", "peer", 500, 10.0, 300.0, 500.0, argon2_ms=9.0, argon2_cpu_ms=8.7,
               cpu_ms=15.0, round_rates=[50.0, 50.0]),
    ]
    run.memory += [Memory("ours", "warm-up", 0, {11: 70.2, 12: 71.0}),
                   Memory("ours", "soak", 0, {11: 80.4, 12: 81.6}),
                   Memory("ours", "soak", 100_000, {11: 81.0, 12: 82.0})]
    text = render(run)
    lines = text.splitlines()
    jwks = next(line for line in lines if line.startswith("jwks"))
    assert jwks.split() == ["jwks", "req/s", "3,000", "4.0", "9.5", "0", "6,000", "2.0", "5.0", "0", "0.50",
                            ">=", "0.50", "pass"]
    assert next(line for line in lines if line.startswith("token")).split()[-3:] == [">=", "0.50", "FAIL"]
    assert next(line for line in lines if line.startswith("userinfo")).split()[-2:] == ["0.50", "stretch"]
    flow = next(line for line in lines if line.startswith("flow "))
    assert flow.split()[-4:] == ["0.30", ">=", "0.25", "pass"]
    flow = next(line for line in lines if line.startswith("flow+password "))
    assert flow.split()[-1] == "-" and "2*" in flow.split()
    assert "ours flow+password: first error: POST /login: 503" in text
    # CPU per request: ours, PostgreSQL, both, the peer; the peer's over ours, without and with PostgreSQL.
    cpu_row = lines[lines.index(next(line for line in lines if line.startswith("CPU ms"))) + 3]
    assert cpu_row.split() == ["token", "1.200", "0.300", "1.500", "0.600", "0.50", "0.40"]
    assert "  ours after warm-up: 70, 71" in lines
    assert "  ours soak, after 100,000 requests: 81, 82" in lines
    assert "80.4 -> 81.0 (+0.6), 81.6 -> 82.0 (+0.4)" in text
    assert "(largest 82.0) and flat over 100,000 requests (each grows < 5%): pass" in text
    assert "at the start, so at most 50.0 password sign-ins/s per core" in text
    bound = "ours {}: {} x the bound of argon2id's {} ms (target >= {})"
    assert bound.format("flow+password", "45.0/s = 0.90", "20.0", "0.80: pass") in text
    assert bound.format("flow+password+otp", "25.0/s = 0.55", "22.0", "0.60: FAIL") in text
    # Each side against its own argon2id, and the share of a flow's CPU its verify alone takes;
    # only where both readings and the flow's CPU are there.
    own = lines.index("each side against its own argon2id (the verify alone, on the server core, before "
                      "each round):")
    assert lines[own + 1:own + 3] == [
        "  ours flow+password+otp: 25.0/s = 0.55 x the bound of its own argon2id (argon2-cffi, 22.0 ms); "
        "that verify alone is 21.0 of the 35.0 CPU ms of a flow (60%)",
        "  peer flow+password+otp: 50.0/s = 0.45 x the bound of its own argon2id (@node-rs/argon2, 9.0 ms); "
        "that verify alone is 8.7 of the 15.0 CPU ms of a flow (58%)"]
    assert not any(line.startswith("  ours flow+password:") and "its own" in line for line in lines)
    # Each round's ratio, where there was more than one.
    rounds = lines.index("ours/peer in each round (ours and the peer taking turns):")
    assert lines[rounds + 1:rounds + 2] == ["  flow+password+otp: 0.40, 0.60"]
    assert ratio(run.results[0], None) is None


def test_rounds_are_taken_together_by_count_time_and_cpu():
    wrk = [Turn(3_000, 10.0, 0, 4.0, 9.0, cpu_ms=1_500.0, postgres_cpu_ms=600.0),
           Turn(1_000, 10.0, 2, 6.0, 30.0, cpu_ms=900.0, postgres_cpu_ms=200.0, notes=["ran out"]),
           Turn(2_000, 10.0, 0, 5.0, 12.0, cpu_ms=1_200.0, postgres_cpu_ms=400.0, notes=["ran out"])]
    result = pooled("token", "ours", wrk)
    assert (result.count, result.seconds, result.rate, result.errors) == (6_000, 30.0, 200.0, 2)
    assert result.round_rates == [300.0, 100.0, 200.0]
    assert (result.cpu_ms, result.postgres_cpu_ms) == (0.6, 0.2)
    # wrk gives percentiles only: the median p50, the worst p99.
    assert (result.p50_ms, result.p99_ms) == (5.0, 30.0)
    assert result.notes == ["ran out"]
    # The driver's flows: the percentiles of all of them; a side without PostgreSQL's figure.
    flows = [Turn(2, 1.0, 0, 0.0, 0.0, cpu_ms=40.0, postgres_cpu_ms=None, flow_ms=[10.0, 30.0],
                  request_ms=[1.0, 2.0]),
             Turn(2, 1.0, 0, 0.0, 0.0, cpu_ms=60.0, postgres_cpu_ms=None, flow_ms=[20.0, 40.0],
                  request_ms=[3.0, 4.0])]
    result = pooled("flow", "peer", flows)
    assert (result.p50_ms, result.p99_ms, result.request_p99_ms) == (30.0, 40.0, 4.0)
    assert (result.cpu_ms, result.postgres_cpu_ms) == (25.0, None)
    # Nothing served: no CPU a request to give.
    idle = pooled("flow", "ours", [Turn(0, 1.0, 3, 0.0, 0.0, cpu_ms=40.0, postgres_cpu_ms=5.0)])
    assert (idle.rate, idle.cpu_ms, idle.postgres_cpu_ms) == (0.0, None, None)


@pytest.mark.parametrize(("first", "last", "verdict"), [
    (80.0, 82.0, "pass"),
    (125.0, 125.5, "FAIL"),  # flat, but over the limit
    (80.0, 90.0, "FAIL"),  # under the limit, but grew by 12 %
])
def test_memory_target_is_small_and_flat(first, last, verdict):
    run = Run(machine={}, settings={})
    run.memory += [Memory("ours", "soak", 0, {11: first}), Memory("ours", "soak", 100_000, {11: last})]
    assert render(run).splitlines()[-1].endswith(f": {verdict}")


def test_memory_target_needs_the_whole_soak():
    run = Run(machine={}, settings={})
    run.memory += [Memory("ours", "soak", 0, {11: 80.0}), Memory("ours", "soak", 10_000, {11: 80.0})]
    assert render(run).splitlines()[-1].endswith("; only 10,000 requests): FAIL")


def test_proc_stat_is_parsed_whatever_the_command_name():
    line = "4242 (my (odd) worker) S 4200 4200 4200 0 -1 4194560 100 0 0 0 120 35 7 3 20 0 1 0 5089 0 0"
    stat = proc.parse_stat(line)
    assert (stat.pid, stat.ppid, stat.pgrp, stat.ticks, stat.children_ticks) == (4242, 4200, 4200, 155, 10)


def test_cpu_between_two_readings_counts_new_processes_in_full():
    before = {10: 100, 11: 50}
    after = {10: 130, 11: 50, 12: 20}  # 12 started in between; a process gone since is not counted
    assert proc.spent_ms(before, after) == pytest.approx(50 * 1000 / proc.TICKS_PER_SECOND)


def test_this_process_cpu_is_read_from_proc():
    mine = proc.stat(os.getpid())
    assert mine is not None and mine.pid == os.getpid()
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    later = proc.stat(mine.pid)
    assert later is not None and proc.spent_ms(proc.ticks([mine]), proc.ticks([later])) >= 50
    assert proc.stat(2**22 + 1) is None  # beyond pid_max: no such process
    assert proc.rss_mib("self") > 10


def test_server_processes_are_found_by_process_group():
    """A pre-forking server's workers are the group's processes but its leader; a lone server is itself."""
    server = targets.Server([], core=0, env={}, ready_url="", log=Path(os.devnull))
    server.process = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"],  # noqa: S607
                                      start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(server.group()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = server.pids()
        assert len(workers) == 2 and server.process.pid not in workers
        assert set(server.rss_mib()) == set(workers)
        assert set(server.cpu_ticks()) == {server.process.pid, *workers}
    finally:
        server.stop()
    lone = [proc.Stat(pid=7, ppid=1, pgrp=7, ticks=0, children_ticks=0)]
    assert proc.serving(lone) == lone


def test_shared_services_are_moved_off_a_core_for_the_run_and_put_back():
    """``proc.pin`` moves every thread of the processes of a name (the bench's PostgreSQL and
    Redis) to the cores it is given, a process forked by one after that too; ``restore`` puts
    back the cores each had."""
    with subprocess.Popen([sys.executable, "-c",  # a threaded service, by its name in /proc
                           "import pathlib, threading, time\n"
                           "pathlib.Path('/proc/self/comm').write_text('idp-bench-svc')\n"
                           "threading.Thread(target=time.sleep, args=(30,)).start()\n"
                           "print('ready', flush=True)\n"
                           "time.sleep(30)\n"], stdout=subprocess.PIPE, text=True) as service:
        try:
            assert service.stdout.readline() == "ready\n"
            everywhere = os.sched_getaffinity(service.pid)
            one = {min(everywhere)}
            pinned = proc.pin(("idp-bench-svc",), one)
            threads = [int(task) for task in os.listdir(f"/proc/{service.pid}/task")]
            assert len(threads) == 2 and set(pinned.previous) == set(threads)
            assert all(os.sched_getaffinity(tid) == one for tid in threads)
            assert (pinned.refused, pinned.cores) == (0, frozenset(one))
            pinned.restore()
            assert all(os.sched_getaffinity(tid) == everywhere for tid in threads)
        finally:
            service.kill()
    assert not proc.pin(("idp-bench-none",), one).previous


def test_the_shared_services_stay_where_they_are_when_told():
    assert parse_args([]).services_anywhere is False
    assert parse_args(["--services-anywhere"]).services_anywhere is True


def test_callgrind_counts_are_read_from_each_dump(tmp_path):
    header = "version: 1\ncreator: callgrind-3.19.0\npid: 99\ncmd:  python -m bench.cpu\npart: {part}\n"
    for part, total in ((1, 900_000), (2, 5_000_000), (10, 7_000_000)):
        (tmp_path / f"callgrind.out.{part}").write_text(
            header.format(part=part) + f"events: Ir\nfn=(1) main\n0 {total}\nsummary: {total}\n"
            f"\n\ntotals: {total}\n")
    (tmp_path / "callgrind.out").write_text(header.format(part=11) + "events: Ir\ntotals: 5\n")
    assert cpu.segments(tmp_path, "callgrind.out") == [900_000, 5_000_000, 7_000_000]
    with pytest.raises(ValueError, match="no totals"):
        cpu.callgrind_total("events: Ir\n")


def test_argon2id_is_timed_alone_at_the_provider_s_parameters_in_wall_and_cpu_time(monkeypatch):
    readings = {}
    for memory in (1024, 8192):
        monkeypatch.setattr(targets, "Settings",
                            partial(Settings, argon2_time_cost=1, argon2_memory_cost=memory))
        readings[memory] = targets.argon2_verify(0)
        # One thread hashing on one core: its CPU time is its wall time, give or take the timers.
        assert 0 < readings[memory].cpu_ms <= readings[memory].wall_ms * 1.2
    # Eight times the memory costs several times as much: the parameters timed are the ones set.
    assert readings[8192].cpu_ms > 3 * readings[1024].cpu_ms


def test_the_code_flows_have_members_enough_that_none_reaches_the_code_limit():
    assert cpu.members_for(["token", "flow"], 2000, 3) == 8
    # 200 flows three times, 50 to warm up and 20 to count round trips: 670 codes, 4 a member.
    assert cpu.members_for(["flow+password+otp"], 2000, 3) == 168
    assert cpu.members_for(["flow+password+otp"], 20, 1) == 8


def test_cpu_options_count_instructions_only_where_valgrind_is(monkeypatch):
    monkeypatch.setattr(cpu.shutil, "which", lambda _name: None)
    assert cpu.parse_args([]).callgrind is False
    monkeypatch.setattr(cpu.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert cpu.parse_args([]).callgrind is True
    assert cpu.parse_args(["--no-callgrind"]).callgrind is False
    assert cpu.parse_args(["--callgrind-requests", "20"]).callgrind_requests == 20
    assert [cpu.scenario_size(name, 50) for name in ("token", "flow")] == [50, 5]


def test_instructions_are_given_to_each_function_that_ran_them():
    events = [("begin", "flow"), ("enter", "f"), ("enter", "g"), ("exit", "g"), ("exit", "f"),
              ("enter", "f"), ("enter", "f"), ("exit", "f"), ("exit", "f"), ("end", "flow"),
              ("begin", "token"), ("end", "token")]
    # counts[k]: what ran before event k since the one before (counts[0]: start-up and warm-up).
    counts = [10_000, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 600]
    counted = cpu.attribute(events, counts, {"flow": 2, "token": 3})
    assert counted["flow"].total == (3 + 5 + 7 + 11 + 13 + 17 + 19 + 23 + 29) / 2
    # f: its first call (5 + 7 + 11, g's included), then its second, the call within it once.
    assert counted["flow"].functions == {"g": (7 / 2, 0.5), "f": ((5 + 7 + 11 + 17 + 19 + 23) / 2, 1.5)}
    assert counted["token"].total == 600 / 3 and counted["token"].functions == {}
    with pytest.raises(RuntimeError, match="expected 12 callgrind dumps, got 11"):
        cpu.attribute(events, counts[:-1], {"flow": 2, "token": 3})


def test_functions_are_named_by_module_and_qualified_name():
    assert cpu.parse_args(["--functions", "sign-in", "--callgrind"]).functions == list(cpu.SIGN_IN_PARTS)
    spaced = cpu.parse_args(["--functions", " flask.app:Flask.preprocess_request ,", "--callgrind"])
    assert spaced.functions == ["flask.app:Flask.preprocess_request"]
    for refused in (["--functions", "idp.signin.views.complete", "--callgrind"],
                    ["--functions", "idp.signin.views:nothing", "--callgrind"],
                    ["--functions", "idp.nothing:complete", "--callgrind"],
                    ["--functions", "sign-in", "--no-callgrind"]):
        with pytest.raises(SystemExit):
            cpu.parse_args(refused)

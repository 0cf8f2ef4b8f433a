"""`python -m bench` (or bench/run): our provider and node-oidc-provider, side by side, one run.

Both servers run pinned to the server core, the load generators (wrk, the
async driver) and this harness to the load core. Each scenario runs against
ours, then at once against the peer, so that both see the same machine; in
rounds (``--rounds``), the two taking turns (ours first, then the peer first),
so that a change in the machine's load falls on both sides alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

from argon2 import PasswordHasher as Argon2Hasher
from sqlalchemy import create_engine, text

from bench import driver, loadgen, pages, proc, seed, targets
from bench.options import Options, parse_args
from bench.report import BOUND_TARGETS, Memory, Result, Run, Turn, percentile, pooled, render
from idp.accounts.hashing import PasswordHasher
from idp.config import Settings

WRK_SCENARIOS = ("discovery", "jwks", "token", "refresh", "userinfo", "introspection", "revocation")
FLOW_SCENARIOS = ("flow", "flow+password", "flow+password+otp")
# At most this long per provider for a 100 000-request soak (in proportion for others).
SOAK_SECONDS = 300
# Fresh inputs minted per second of a consuming scenario, above what each provider can take.
MINT_PER_SECOND = {"ours": 5000, "peer": 10000}
# Tokens in our database before the first request (their first is the bearer the steady
# scenarios present).
TOKENS_IN_SERVICE = 10_000


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    node = subprocess.run(["node", "--version"],  # noqa: S607 - node from PATH, as bench/run checked
                          capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": model, "cores": str(os.cpu_count()), "kernel": platform.release(),
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})", "node": node,
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


class Backends:
    """The PostgreSQL backends serving the bench database (``pg_stat_activity``), when PostgreSQL
    runs on this machine: their CPU is read from /proc like the servers'."""

    def __init__(self, database_url: str):
        self.database = seed.database_name(database_url)
        self.engine = create_engine(seed.server_url(database_url))
        with self.engine.connect() as connection:
            self.local = proc.stat(connection.scalar(text("SELECT pg_backend_pid()"))) is not None

    def ticks(self) -> dict[int, int]:
        with self.engine.connect() as connection:
            pids = connection.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                                      {"name": self.database}).all()
        return proc.ticks([found for found in map(proc.stat, pids) if found is not None])


class Meter:
    """CPU spent over one scenario by a server's processes and, for ours, the PostgreSQL backends."""

    def __init__(self, server: targets.Server, backends: Backends | None):
        self.server = server
        self.backends = backends if backends is not None and backends.local else None
        self.server_before = server.cpu_ticks()
        self.backends_before = self.backends.ticks() if self.backends else {}

    def spent(self) -> tuple[float, float | None]:
        """CPU ms spent since the meter started by the server, and by PostgreSQL (None if not measured)."""
        server = proc.spent_ms(self.server_before, self.server.cpu_ticks())
        if self.backends is None:
            return server, None
        return server, proc.spent_ms(self.backends_before, self.backends.ticks())

    def per(self, count: int) -> tuple[float | None, float | None]:
        """CPU ms per request (or flow) of the server, and of PostgreSQL (None if not measured)."""
        if count <= 0:
            return None, None
        server, postgres = self.spent()
        return server / count, None if postgres is None else postgres / count


class Bench:
    def __init__(self, options: Options, workdir: Path):
        self.options = options
        self.workdir = workdir
        self.run = Run(machine=machine(), settings={
            "seconds": options.seconds, "connections": options.connections, "workers": options.workers,
            "threads": options.threads, "server_core": options.server_core, "load_core": options.load_core,
        })
        self.servers: list[targets.Server] = []
        self.backends: Backends | None = None
        self.secret_key = secrets.token_urlsafe(48)
        self.ours_url = f"http://127.0.0.1:{options.ours_port}"
        self.peer_url = f"http://127.0.0.1:{options.peer_port}"

    # -- servers -----------------------------------------------------------------

    def ours_settings(self, **overrides) -> dict:
        return {
            "env": "development", "secret_key": self.secret_key, "base_url": self.ours_url,
            "database_url": self.options.database_url, "redis_url": self.options.redis_url,
            "keys_dir": str(self.workdir / "keys"), "tenants_dir": targets.tenants_dir(self.workdir),
            "cookie_secure": False,
            # Each virtual browser has its own address (X-Forwarded-For), as behind a load balancer.
            "trusted_proxies": 1,
            # Minted codes must outlive the scenarios that use them.
            "authorization_code_ttl": 3600,
            **overrides,
        }

    def start(self, server: targets.Server) -> targets.Server:
        self.servers.append(server)
        server.start()
        # bench/run kills what is listed here if this process dies without cleaning up.
        with open(os.environ.get("BENCH_PIDS_FILE", self.options.out / "pids"), "a") as pids:
            pids.write(f"{server.process.pid}\n")
        return server

    def ours_env(self, **overrides) -> dict[str, str]:
        return targets.environment(self.ours_settings(**overrides))

    def start_ours(self, name: str, **overrides) -> targets.Ours:
        env = self.ours_env(**overrides)
        return self.start(targets.ours(core=self.options.server_core, port=self.options.ours_port, env=env,
                                       workers=self.options.workers, threads=self.options.threads,
                                       log=self.options.out / f"{name}.log"))

    def stop(self, server: targets.Server) -> None:
        server.stop()
        self.servers.remove(server)

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.stop(server)

    # -- measuring -----------------------------------------------------------------

    def wrk(self, base_url: str, requests: list[loadgen.Request], mode: str = "cycle",
            seconds: float | None = None) -> loadgen.Measure:
        return loadgen.run_wrk(base_url, requests, mode=mode, seconds=seconds or self.options.seconds,
                               connections=self.options.connections, core=self.options.load_core,
                               workdir=self.workdir)

    def meter(self, target: str, server: targets.Server) -> Meter:
        return Meter(server, self.backends if target == "ours" else None)

    def record(self, result: Result) -> None:
        self.run.results.append(result)
        if len(result.round_rates) > 1:
            rate = self.rate_text(result.rate, result.scenario)
            self.say(f"  {result.target:4} {result.scenario:18} {rate}"
                     f"{self.cpu_text(result.cpu_ms, result.postgres_cpu_ms)}  "
                     f"({len(result.round_rates)} rounds together)")

    @staticmethod
    def rate_text(rate: float, scenario: str) -> str:
        return f"{rate:9,.1f} flows/s" if scenario in FLOW_SCENARIOS else f"{rate:9,.0f} req/s"

    @staticmethod
    def cpu_text(cpu_ms: float | None, postgres_cpu_ms: float | None) -> str:
        text = "" if cpu_ms is None else f"  CPU {cpu_ms:.3f} ms"
        if postgres_cpu_ms is not None:
            text += f" + PostgreSQL {postgres_cpu_ms:.3f} ms"
        return text

    def say_turn(self, scenario: str, target: str, turn: Turn, number: int) -> None:
        rounds = f"  round {number}/{self.options.rounds}" if self.options.rounds > 1 else ""
        # CPU a request: none to say when nothing was served (as ``pooled`` gives it).
        per = pooled(scenario, target, [turn])
        cpu = self.cpu_text(per.cpu_ms, per.postgres_cpu_ms)
        self.say(f"  {target:4} {scenario:18} {self.rate_text(turn.rate, scenario)}  "
                 f"p99 {turn.p99_ms:7.1f} ms  errors {turn.errors}{cpu}{rounds}")

    def wrk_turn(self, scenario: str, target: str, server: targets.Server, url: str, seeded: seed.Seeded,
                 minter: seed.Minter) -> Turn:
        requests, mode = self.scenario_requests(target, seeded, minter, scenario)
        meter = self.meter(target, server)
        measure = self.wrk(url, requests, mode)
        cpu_ms, postgres_cpu_ms = meter.spent()
        notes = (["ran out of minted inputs before the end: the rate is understated"]
                 if measure.exhausted else [])
        return Turn(measure.requests, measure.seconds, measure.errors, measure.p50_ms, measure.p99_ms, cpu_ms,
                    postgres_cpu_ms, notes)

    def flow_turn(self, scenario: str, target: str, server: targets.Server, flows, base_url: str,
                  members: list[seed.Member]) -> Turn:
        meter = self.meter(target, server)
        tally, elapsed = asyncio.run(driver.drive(flows, base_url, scenario, members,
                                                  seconds=self.options.seconds,
                                                  concurrency=self.options.connections))
        cpu_ms, postgres_cpu_ms = meter.spent()
        notes = [f"first error: {tally.first_error[:160]}"] if tally.first_error else []
        return Turn(tally.flows, elapsed, tally.errors, percentile(tally.flow_ms, 0.5),
                    percentile(tally.flow_ms, 0.99), cpu_ms, postgres_cpu_ms, notes,
                    flow_ms=tally.flow_ms, request_ms=tally.request_ms)

    def flows(self, scenario: str, target: str, server: targets.Server, flows, base_url: str,
              members: list[seed.Member]) -> None:
        """One run of a flow scenario against one side, recorded."""
        turn = self.flow_turn(scenario, target, server, flows, base_url, members)
        self.say_turn(scenario, target, turn, 1)
        self.record(pooled(scenario, target, [turn]))

    def side_by_side(self, scenario: str, sides: dict[str, Callable[[], Turn]]) -> None:
        """``scenario`` on each side (ours, the peer) in ``--rounds`` rounds, the sides taking turns
        first; each side's password sign-ins after a reading of its argon2id's verify on the core
        (argon2-cffi's for ours, the bound; the peer's own library's for the peer)."""
        self.say(f"{scenario}:")
        turns: dict[str, list[Turn]] = {target: [] for target in sides}
        readings: dict[str, list[targets.Verify]] = {target: [] for target in sides}
        for number in range(1, self.options.rounds + 1):
            order = list(sides) if number % 2 else list(reversed(sides))
            for target in order:
                if scenario in BOUND_TARGETS:
                    readings[target].append(targets.argon2_verify(self.options.server_core,
                                                                  peer=target == "peer"))
                turn = sides[target]()
                self.say_turn(scenario, target, turn, number)
                turns[target].append(turn)
        for target, taken in turns.items():
            result = pooled(scenario, target, taken)
            if readings[target]:
                result.argon2_ms = statistics.fmean(verify.wall_ms for verify in readings[target])
                result.argon2_cpu_ms = statistics.fmean(verify.cpu_ms for verify in readings[target])
            self.record(result)

    def memory(self, target: str, server: targets.Server, phase: str, requests: int = 0) -> None:
        self.run.memory.append(Memory(target, phase, requests, server.rss_mib()))

    def soak(self, target: str, server: targets.Server, base_url: str,
             requests: list[loadgen.Request]) -> None:
        """Steady traffic until ``soak_requests`` more were served, reading RSS first and at each quarter.

        Bounded in time too (SOAK_SECONDS per 100 000 requests), so that a slow machine still
        ends the run: the report says how many requests were served.
        """
        sent, quarter = 0, self.options.soak_requests / 4
        next_reading = quarter
        deadline = time.monotonic() + SOAK_SECONDS * self.options.soak_requests / 100_000
        self.memory(target, server, "soak")
        read_at = 0
        while sent < self.options.soak_requests and time.monotonic() < deadline:
            sent += self.wrk(base_url, requests, seconds=5).requests
            if next_reading <= sent < self.options.soak_requests:
                self.memory(target, server, "soak", sent)
                read_at, next_reading = sent, (sent // quarter + 1) * quarter
        if sent != read_at:  # the deadline may end the soak just after a quarter's reading
            self.memory(target, server, "soak", sent)
        rss = ", ".join(f"{value:.0f}" for value in server.rss_mib().values())
        self.say(f"  {target:4} soak: {sent:,} requests, RSS {rss} MiB")

    @staticmethod
    def say(text: str) -> None:
        print(text, flush=True)

    # -- the run -------------------------------------------------------------------

    def measure_tools(self) -> None:
        self.run.argon2_ms = targets.argon2_verify(self.options.server_core).wall_ms
        self.say(f"argon2id verify on the server core: {self.run.argon2_ms:.1f} ms")
        trivial = self.start(targets.trivial(core=self.options.server_core, port=self.options.peer_port,
                                             log=self.options.out / "trivial.log"))
        try:
            measure = self.wrk(self.peer_url, [loadgen.Request("GET", "/")], seconds=2)
            self.run.driver_ceiling["wrk"] = measure.requests / measure.seconds
            self.run.driver_ceiling["async driver (aiohttp)"] = asyncio.run(
                driver.ceiling(self.peer_url, seconds=2, concurrency=self.options.connections))
        finally:
            self.stop(trivial)
        self.say("load generators against a trivial server: " + ", ".join(
            f"{name} {value:,.0f} req/s" for name, value in self.run.driver_ceiling.items()))

    def peer_config(self, seeded: seed.Seeded) -> Path:
        defaults = Settings()
        hasher = Argon2Hasher(time_cost=defaults.argon2_time_cost, memory_cost=defaults.argon2_memory_cost,
                              parallelism=defaults.argon2_parallelism)
        stored = hasher.hash(seed.PASSWORD)
        config = {
            "client_id": seeded.client_id, "client_secret": seeded.client_secret,
            "redirect_uri": seed.REDIRECT_URI, "scope": seed.SCOPE, "code_challenge": seed.CODE_CHALLENGE,
            "cookie_key": secrets.token_urlsafe(32),
            "ttl": {"access_token": defaults.access_token_ttl, "authorization_code": 3600,
                    "id_token": defaults.id_token_ttl, "refresh_token": defaults.refresh_token_ttl,
                    "interaction": defaults.interaction_ttl, "session": defaults.session_absolute_timeout},
            "accounts": [{
                "id": member.id, "login": member.login, "password_hash": stored, "given_name": "Jeanne",
                "family_name": "Martin", "birthdate": "1958-03-14", "email": member.login,
                "phone_number": "+33612345688", "member_number": f"8{number:07d}",
            } for number, member in enumerate(seeded.members)],
        }
        path = self.workdir / "peer.json"
        path.write_text(json.dumps(config))
        return path

    def peer_mint(self, kind: str, count: int) -> list[str]:
        query = urlencode({"kind": kind, "count": count})
        done = subprocess.run(["curl", "-sf", "-X", "POST", f"{self.peer_url}/bench/mint?{query}"],  # noqa: S603,S607
                              capture_output=True, text=True, check=True)
        return done.stdout.split()

    def scenario_requests(self, target: str, seeded: seed.Seeded, minter: seed.Minter | None,
                          scenario: str) -> tuple[list[loadgen.Request], str]:
        """The requests of one wrk scenario, and how wrk sends them."""
        ours = target == "ours"
        prefix = f"/{seed.TENANT}" if ours else ""
        auth = pages.basic(seeded.client_id, seeded.client_secret)
        count = int(self.options.seconds * MINT_PER_SECOND[target])
        bearer = self.bearer[target]
        if scenario == "discovery":
            return [loadgen.Request("GET", f"{prefix}/.well-known/openid-configuration")], "cycle"
        if scenario == "jwks":
            return [loadgen.Request("GET", f"{prefix}/jwks")], "cycle"
        if scenario == "userinfo":
            path = f"{prefix}/userinfo" if ours else "/me"
            return [loadgen.Request("GET", path, f"Bearer {bearer}")], "cycle"
        if scenario == "introspection":
            path = f"{prefix}/introspect" if ours else "/token/introspection"
            return [loadgen.Request("POST", path, auth, f"token={bearer}")], "cycle"
        if scenario == "token":
            codes = minter.codes(count) if ours else self.peer_mint("code", count)
            body = (f"grant_type=authorization_code&redirect_uri={seed.REDIRECT_URI}"
                    f"&code_verifier={seed.CODE_VERIFIER}")
            return [loadgen.Request("POST", f"{prefix}/token", auth, f"{body}&code={code}")
                    for code in codes], "consume"
        if scenario == "refresh":
            seeds = 4 * self.options.connections
            tokens = ([refresh for _access, refresh in minter.tokens(seeds)] if ours
                      else self.peer_mint("refresh", seeds))
            body = "grant_type=refresh_token&refresh_token="
            return [loadgen.Request("POST", f"{prefix}/token", auth, body + token)
                    for token in tokens], "chain"
        # revocation
        tokens = ([access for access, _refresh in minter.tokens(count)] if ours
                  else self.peer_mint("access", count))
        path = f"{prefix}/revoke" if ours else "/token/revocation"
        return [loadgen.Request("POST", path, auth, f"token={token}&token_type_hint=access_token")
                for token in tokens], "consume"

    def execute(self) -> Run:
        options = self.options
        options.out.mkdir(parents=True, exist_ok=True)
        self.say(f"machine: {self.run.machine}")
        self.measure_tools()

        self.say("seeding our database (idp_bench) and Redis …")
        seed.reset_database(options.database_url)
        backends = self.backends = Backends(options.database_url)
        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        seeded = seed.seed(self.ours_settings(), members=options.members, cheap=cheap)
        minter = seed.Minter(self.ours_settings(), seeded)
        pinned = self.place_services()
        try:
            self.compare(seeded, minter)
        finally:
            if pinned is not None:
                pinned.restore()
            minter.close()
            backends.engine.dispose()
        return self.run

    def place_services(self) -> proc.Pinned | None:
        """This machine's PostgreSQL and Redis moved off the server core for the run: in
        production they are other machines' work (the peer keeps its state in its own process),
        and on the server core they would take its time from ours alone. Their CPU is still
        read and shown beside ours'. None when they stay where they are."""
        others = set(range(os.cpu_count() or 1)) - {self.options.server_core}
        pinned = None
        if not others:
            where = "where the machine runs them (no other core)"
        elif self.options.services_anywhere:
            where = "where the machine runs them (--services-anywhere)"
        else:
            pinned = proc.pin(proc.SERVICES, others)
            refused = f", {pinned.refused} not allowed" if pinned.refused else ""
            where = (f"off the server core, on core {', '.join(map(str, sorted(others)))} "
                     f"({len(pinned.previous)} threads moved{refused})"
                     if pinned.previous or pinned.refused else "none of their processes on this machine")
        self.run.settings["services"] = where
        self.say(f"PostgreSQL and Redis: {where}")
        return pinned

    def compare(self, seeded: seed.Seeded, minter: seed.Minter) -> None:
        options = self.options
        ours = self.start_ours("ours")
        self.start(targets.outbox_worker(core=options.server_core, env=self.ours_env(),
                                         log=options.out / "outbox.log"))
        peer = self.start(targets.peer(core=options.server_core, port=options.peer_port,
                                       config=self.peer_config(seeded), log=options.out / "peer.log"))
        # Ours starts with the tokens of a provider in service (analyzed once minted): the
        # statements its warm-up prepares are planned for a table of that size, not for one row,
        # a plan (a scan of every token) kept until the table is next analyzed.
        self.bearer = {"ours": minter.tokens(TOKENS_IN_SERVICE)[0][0], "peer": self.peer_mint("access", 1)[0]}
        steady = {
            target: [request for scenario in ("discovery", "jwks", "userinfo", "introspection")
                     for request in self.scenario_requests(target, seeded, None, scenario)[0]]
            for target in ("ours", "peer")
        }
        for target, server, url in (("ours", ours, self.ours_url), ("peer", peer, self.peer_url)):
            self.wrk(url, steady[target], seconds=2)  # warm-up: imports, caches, connection pools
            self.memory(target, server, "warm-up")
        flows = {"ours": driver.OurFlows(seeded.client_id, seeded.client_secret, options.database_url),
                 "peer": driver.PeerFlows(seeded.client_id, seeded.client_secret)}
        sides = (("ours", ours, self.ours_url), ("peer", peer, self.peer_url))
        for scenario in options.scenarios:
            if scenario in WRK_SCENARIOS:
                self.side_by_side(scenario, {
                    target: partial(self.wrk_turn, scenario, target, server, url, seeded, minter)
                    for target, server, url in sides})
            elif scenario != "flow":
                self.side_by_side(scenario, {
                    target: partial(self.flow_turn, scenario, target, server, flows[target], url,
                                    seeded.members)
                    for target, server, url in sides})
        if options.soak_requests:
            self.say("soak (RSS after steady traffic):")
            self.soak("ours", ours, self.ours_url, steady["ours"])
            self.soak("peer", peer, self.peer_url, steady["peer"])
        if "flow" in options.scenarios:
            # The flow without the hash: our server again, at the cheapest argon2 cost, with members
            # whose hash was made at that cost (so nothing is rehashed).
            self.stop(ours)
            ours = self.start_ours("ours-cheap-hash", **seed.CHEAP_ARGON2)
            self.wrk(self.ours_url, steady["ours"], seconds=2)  # its warm-up, as the first server's
            self.say("(the flow: the sign-in without the password hash)")
            self.side_by_side("flow", {
                "ours": partial(self.flow_turn, "flow", "ours", ours, flows["ours"], self.ours_url,
                                seeded.cheap_members),
                "peer": partial(self.flow_turn, "flow", "peer", peer, flows["peer"], self.peer_url,
                                seeded.members)})
        self.stop_all()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    # This harness drives the async flows: it belongs on the load core with wrk.
    os.sched_setaffinity(0, {options.load_core})
    # SIGTERM (bench/run's trap, a CI timeout) unwinds like Ctrl-C: every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="idp-bench-") as workdir:
        bench = Bench(options, Path(workdir))
        try:
            run = bench.execute()
        finally:
            bench.stop_all()
    results = options.out / "results.json"
    results.write_text(json.dumps(run.as_dict(), indent=2) + "\n")
    print()
    print(render(run))
    print(f"\n(results: {results})")
    return 0

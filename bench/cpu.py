"""CPU time and round trips per request, in-process: what each endpoint costs, whatever the load.

    .venv/bin/python -m bench.cpu [--requests 2000] [--scenarios token,userinfo] [--profile DIR]

Throughput on a shared machine moves with everyone else's work; the CPU a
request burns in our process (``time.process_time``) and the round trips it
makes to PostgreSQL and Redis barely do. This builds the app on the bench's own
PostgreSQL database and Redis database (never the test suite's), seeds a client
and members the way ``bench/run`` does, and calls the WSGI app directly with
prepared environs, so nothing but the app is timed.

Round trips are counted apart from the timing: libpq's protocol trace
(``ReadyForQuery`` messages: BEGIN, the pool's ping, every statement, COMMIT
and ROLLBACK each count one) and every call the store makes to Redis.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import dataclasses
import gc
import io
import pstats
import resource
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from psycopg import pq
from sqlalchemy import event, update
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bench import seed, targets
from bench.cli import CHEAP_ARGON2
from idp import create_app
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account
from idp.config import Settings

TENANT = f"/{seed.TENANT}"
SCENARIOS = ("discovery", "jwks", "token", "refresh", "userinfo", "introspection", "revocation", "flow",
             "flow+password")
# The scenarios that run code flows (a tenth of --requests), and what drives each.
FLOW_SCENARIOS: dict[str, Callable[[Flask, Inputs], Flows]] = {}
BASE_URL = "http://127.0.0.1:8710"


@dataclass
class Inputs:
    """What the scenarios send: the client's credentials and minted codes and tokens."""

    seeded: seed.Seeded
    minter: seed.Minter

    @property
    def basic(self) -> str:
        pair = f"{self.seeded.client_id}:{self.seeded.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _environ(path: str, method: str = "GET", **kwargs) -> dict:
    return EnvironBuilder(path=path, method=method, base_url=BASE_URL, **kwargs).get_environ()


def requests_for(scenario: str, count: int, inputs: Inputs) -> list[dict]:
    """``count`` WSGI environs for one scenario; consumed inputs are minted afresh for each."""
    auth = {"Authorization": inputs.basic}
    if scenario == "discovery":
        return [_environ(f"{TENANT}/.well-known/openid-configuration") for _ in range(count)]
    if scenario == "jwks":
        return [_environ(f"{TENANT}/jwks") for _ in range(count)]
    if scenario == "token":
        return [_environ(f"{TENANT}/token", "POST", headers=auth, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": seed.REDIRECT_URI,
            "code_verifier": seed.CODE_VERIFIER}) for code in inputs.minter.codes(count)]
    if scenario == "refresh":
        return [_environ(f"{TENANT}/token", "POST", headers=auth, data={
            "grant_type": "refresh_token", "refresh_token": refresh})
            for _access, refresh in inputs.minter.tokens(count)]
    if scenario == "userinfo":
        access, _refresh = inputs.minter.tokens(1)[0]
        return [_environ(f"{TENANT}/userinfo", headers={"Authorization": f"Bearer {access}"})
                for _ in range(count)]
    if scenario == "introspection":
        access, _refresh = inputs.minter.tokens(1)[0]
        return [_environ(f"{TENANT}/introspect", "POST", headers=auth, data={"token": access})
                for _ in range(count)]
    if scenario == "revocation":
        return [_environ(f"{TENANT}/revoke", "POST", headers=auth, data={"token": access})
                for access, _refresh in inputs.minter.tokens(count)]
    raise ValueError(scenario)


def call(app: Flask, environ: dict) -> tuple[int, dict[str, str], bytes]:
    body_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), headers, b"".join(body_iter)


class Counts:
    """Round trips to PostgreSQL (libpq trace) and to Redis (the store), while ``counting``."""

    def __init__(self, app: Flask):
        self.services = app.extensions["idp"]
        self.redis = 0
        self.statements: list[str] = []
        self.trace = Path(tempfile.mkstemp(prefix="bench-cpu-trace-")[1])

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        store, engine = self.services.store, self.services.database.engine
        call_store = store._call
        trace = self.trace.open("w")

        def counted(fn, *args, **kwargs):
            self.redis += 1
            return call_store(fn, *args, **kwargs)

        def statement(_conn, _cursor, text, _params, _context, _many):
            self.statements.append(" ".join(text.split()))

        def traced(dbapi_connection, _record):
            dbapi_connection.pgconn.trace(trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

        # Fresh connections, each traced from its first message.
        engine.dispose()
        event.listen(engine, "connect", traced)
        event.listen(engine, "before_cursor_execute", statement)
        store._call = counted
        try:
            yield
        finally:
            del store._call
            event.remove(engine, "connect", traced)
            event.remove(engine, "before_cursor_execute", statement)
            engine.dispose()
            trace.close()

    def postgres(self) -> int:
        """Round trips since the trace began: BEGIN, COMMIT, ROLLBACK and pings count, as statements do."""
        lines = self.trace.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if line.startswith("B\t") and "\tReadyForQuery\t" in line)


class Flows:
    """The code flow without the hash, as ``bench/run``'s ``flow`` scenario drives it."""

    def __init__(self, app: Flask, inputs: Inputs):
        self.app = app
        self.inputs = inputs
        self.members = iter(inputs.seeded.cheap_members * 1000)

    def run(self) -> int:
        from bench import driver  # noqa: PLC0415 - only this scenario needs aiohttp's helpers

        member = next(self.members)
        browser = self.app.test_client()
        for name, value in member.cookies.items():
            browser.set_cookie(name, value, domain=urlsplit(BASE_URL).hostname)
        params = driver.authorization_params(self.inputs.seeded.client_id, prompt="login")
        login = browser.get(f"{TENANT}/authorize", query_string=params, base_url=BASE_URL)
        page = browser.get(login.headers["Location"], base_url=BASE_URL)
        after = browser.post(f"{TENANT}/login", base_url=BASE_URL, data={
            "interaction": driver.query_value(login.headers["Location"], "interaction"),
            "identifier": member.login, "password": seed.PASSWORD, "csrf_token": driver.csrf(page.text)})
        callback = browser.get(after.headers["Location"], base_url=BASE_URL)
        code = driver.query_value(callback.headers["Location"], "code")
        auth = {"Authorization": self.inputs.basic}
        token = browser.post(f"{TENANT}/token", base_url=BASE_URL, headers=auth, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": seed.REDIRECT_URI,
            "code_verifier": seed.CODE_VERIFIER})
        return token.status_code


def password_flows(app: Flask, inputs: Inputs) -> Flows:
    """``bench/run``'s ``flow+password``: the same flow on a trusted browser, by an app at the
    configured argon2id cost whose members' hashes were made at that cost. Prints the CPU of
    one argon2id verify alone, the bound on password sign-ins per core."""
    settings = dataclasses.asdict(app.extensions["idp"].settings)
    costs = {name: getattr(Settings, name) for name in CHEAP_ARGON2}
    real = create_app({**settings, **costs})
    hasher = real.extensions["idp"].hasher
    stored = hasher.hash(seed.PASSWORD)
    with real.extensions["idp"].database.engine.begin() as connection:
        connection.execute(update(Account).where(Account.id.in_(
            [member.id for member in inputs.seeded.members])).values(password_hash=stored))
    started = time.process_time()
    for _ in range(20):
        hasher.verify(stored, seed.PASSWORD)
    verify_ms = (time.process_time() - started) * 1000 / 20
    print(f"{'':14} argon2id verify alone ({', '.join(f'{k}={v}' for k, v in costs.items())}): "
          f"{verify_ms:.2f} CPU ms, a bound of {1000 / verify_ms:.1f} sign-ins/s per core", flush=True)
    flows = Flows(real, inputs)
    flows.members = iter(inputs.seeded.members * 1000)
    return flows


FLOW_SCENARIOS.update({"flow": Flows, "flow+password": password_flows})


@dataclass
class Measure:
    scenario: str
    requests: int
    cpu_ms: float
    postgres: float
    redis: float
    statuses: Counter
    # The statements of one request (as SQLAlchemy sends them), with how many times each.
    statements: list[str]


def measure(app: Flask, scenario: str, count: int, inputs: Inputs, counts: Counts, *, repeat: int,
            profile: Path | None) -> Measure:
    flows = FLOW_SCENARIOS[scenario](app, inputs) if scenario in FLOW_SCENARIOS else None

    def batch(size: int) -> Callable[[], list[int]]:
        if flows is not None:
            return lambda: [flows.run() for _ in range(size)]
        environs = requests_for(scenario, size, inputs)
        return lambda: [call(app, environ)[0] for environ in environs]

    batch(min(50, count))()  # warm-up: imports, templates, pool, key material
    sample = 10
    own = flows is not None and flows.app is not app  # the scenario's own app: its round trips
    if own:
        counts = Counts(flows.app)
    counts.redis = 0
    counts.statements = []
    with counts.counting():
        batch(sample)()
    trips = counts.postgres()
    if own:
        counts.trace.unlink()
    redis_calls = counts.redis
    statements = Counter(text[:150] for text in counts.statements)
    # CPU time, not wall time: waits on PostgreSQL and Redis are not this process's cost.
    # Other processes still slow ours down (caches, frequency): the best of ``repeat`` runs is kept.
    profiler = cProfile.Profile(time.process_time) if profile else None
    statuses: Counter = Counter()
    best = float("inf")
    for _ in range(repeat):
        run = batch(count)
        gc.collect()
        if profiler:
            profiler.enable()
        started = time.process_time()
        statuses.update(run())
        best = min(best, time.process_time() - started)
        if profiler:
            profiler.disable()
    if profiler:
        _write_profile(profiler, profile, scenario)
    return Measure(scenario, count, best * 1000 / count, trips / sample, redis_calls / sample, statuses,
                   [f"{n / sample:4.1f} x {text}" for text, n in statements.items()])


def _write_profile(profiler: cProfile.Profile, directory: Path, scenario: str) -> None:
    """<scenario>.prof (for snakeviz or pstats) and <scenario>.txt: the top functions, both ways."""
    directory.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(directory / f"{scenario}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(80)
    (directory / f"{scenario}.txt").write_text(text.getvalue())


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def soak(app: Flask, requests: int, inputs: Inputs, *, allocations: bool) -> None:
    """Userinfo ``requests`` times, printing the RSS as it goes (and what grew, with tracemalloc)."""
    access, _refresh = inputs.minter.tokens(1)[0]
    headers = {"Authorization": f"Bearer {access}"}
    step = max(1, requests // 10)
    if allocations:
        tracemalloc.start(10)
    before = tracemalloc.take_snapshot() if allocations else None
    print(f"soak: userinfo x {requests:,}; RSS {rss_mib():.1f} MiB at start")
    for done in range(1, requests + 1):
        call(app, _environ(f"{TENANT}/userinfo", headers=headers))
        if done % step == 0:
            print(f"  after {done:>9,}: RSS {rss_mib():.1f} MiB")
    if before is not None:
        for stat in tracemalloc.take_snapshot().compare_to(before, "traceback")[:10]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  {stat.traceback[-1]}")


def build(database_url: str, redis_url: str, keys_dir: Path) -> tuple[Flask, Inputs]:
    settings = {
        "env": "development", "secret_key": "bench-cpu-secret-key-0123456789-abcdefghijklmnop",
        "base_url": BASE_URL, "database_url": database_url, "redis_url": redis_url,
        "keys_dir": str(keys_dir), "cookie_secure": False, "authorization_code_ttl": 3600,
        "tenants_dir": targets.tenants_dir(keys_dir),
        **CHEAP_ARGON2,
    }
    seed.reset_database(database_url)
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    seeded = seed.seed(settings, members=8, cheap=cheap)
    app = create_app(settings)
    return app, Inputs(seeded, seed.Minter(settings, seeded))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="timed requests per scenario (default 2000; flows: a tenth)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per scenario, the least CPU is reported (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench_perf",
                        help="a database whose name starts with idp_bench (its schema is recreated)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9",
                        help="a Redis database of its own (flushed; default db 9)")
    parser.add_argument("--profile", type=Path, help="write a CPU profile (cProfile) per scenario there")
    parser.add_argument("--statements", action="store_true", help="print the statements of one request")
    parser.add_argument("--soak", type=int, default=0, help="then call userinfo this many times, "
                        "printing the RSS")
    parser.add_argument("--allocations", action="store_true", help="with --soak: tracemalloc's top growth")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.redis_url.rstrip("/").endswith("/15"):
        parser.error("--redis-url: Redis db 15 belongs to the test suite")
    if not args.database_url.rsplit("/", 1)[-1].startswith("idp_bench"):
        parser.error("--database-url must name a database whose name starts with idp_bench")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cpu-keys-") as keys_dir:
        app, inputs = build(args.database_url, args.redis_url, Path(keys_dir))
        counts = Counts(app)
        try:
            print(f"{'scenario':14} {'requests':>8} {'CPU ms/req':>10} {'PG trips':>8} {'Redis':>6}  "
                  "statuses")
            for scenario in args.scenarios:
                count = max(1, args.requests // 10) if scenario in FLOW_SCENARIOS else args.requests
                result = measure(app, scenario, count, inputs, counts, repeat=args.repeat,
                                 profile=args.profile)
                statuses = " ".join(f"{code}x{n}" for code, n in sorted(result.statuses.items()))
                print(f"{scenario:14} {result.requests:8} {result.cpu_ms:10.3f} {result.postgres:8.1f} "
                      f"{result.redis:6.1f}  {statuses}", flush=True)
                if args.statements:
                    for statement in result.statements:
                        print(f"    {statement}")
            if args.soak:
                soak(app, args.soak, inputs, allocations=args.allocations)
        finally:
            counts.trace.unlink(missing_ok=True)
            inputs.minter.close()
            app.extensions["idp"].database.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

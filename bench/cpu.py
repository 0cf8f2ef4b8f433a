"""CPU time and round trips per request, in-process: what each endpoint costs, whatever the load.

    bench/.venv/bin/python -m bench.cpu [--requests 2000] [--scenarios token,userinfo] [--profile DIR]
                                        [--no-callgrind] [--callgrind-requests 50]
                                        [--functions sign-in | --functions module:Class.method,...]

Throughput on a shared machine moves with everyone else's work; the CPU a
request burns in our process (``time.process_time``) and the round trips it
makes to PostgreSQL and Redis barely do. This builds the app on the bench's own
PostgreSQL database and Redis database (never the test suite's), seeds a client
and members the way ``bench/run`` does, and calls the WSGI app directly with
prepared environs, so nothing but the app is timed; it logs as the production server
does (a JSON line per request, here to /dev/null).

Round trips are counted apart from the timing: libpq's protocol trace
(``ReadyForQuery`` messages: BEGIN, the pool's ping, every statement, COMMIT
and ROLLBACK each count one) and every call the store makes to Redis. The
PostgreSQL backends of the app's connections are timed too, from /proc (the
server being local), over the same requests.

Instructions per request are counted by valgrind's callgrind, in a child
process run beforehand: the same build and warm-up, then the requests between
two calls to ``getppid`` (which nothing else here calls), before each of which
callgrind writes out and resets its counts, so neither start-up nor warm-up is
counted. Unlike time, the count does not depend on the machine's load.

``--functions`` says where those instructions go: each function named (``module:qualified.name``,
as the module that calls it finds it; ``sign-in``: the sign-in's parts, ``SIGN_IN_PARTS``) is
wrapped in the child so that it calls ``getppid`` as it starts and as it ends, and what callgrind
counted between the two (the calls it makes included) is added up per request of each scenario.
A wrapper's own cost is a few thousand instructions a call, counted in its caller.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import dataclasses
import functools
import gc
import importlib
import io
import json
import logging.config
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from psycopg import pq
from sqlalchemy import event, update
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bench import pages, proc, seed, targets
from idp import create_app, logs
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account
from idp.config import Settings

TENANT = f"/{seed.TENANT}"
SCENARIOS = ("discovery", "jwks", "token", "refresh", "userinfo", "introspection", "revocation", "flow",
             "flow+password", "flow+password+otp")
# The scenarios that run code flows (a tenth of --requests), and what drives each.
FLOW_SCENARIOS: dict[str, Callable[[Flask, Inputs], Flows]] = {}
BASE_URL = "http://127.0.0.1:8710"
ROOT = Path(__file__).resolve().parent.parent
# Callgrind writes out its counts (and starts again from zero) before each call to this function.
MARK = "getppid"
# A function ``--functions`` names: its module, then its name there (``module:qualified.name``).
MARKABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
# The parts of a sign-in ``--functions sign-in`` breaks a flow into: the request's way through
# Flask and the provider's hooks, then each step's own work.
SIGN_IN_PARTS = (
    "flask.app:Flask.preprocess_request", "idp.web.gate:gate", "flask_wtf.csrf:CSRFProtect.protect",
    "flask.app:Flask.process_response", "idp.sessions:StoreSessionInterface.open_session",
    "idp.sessions:StoreSessionInterface.save_session", "idp.store:RedisStore._call",
    "flask.app:Flask.dispatch_request", "idp.oidc.authorization:_checked_request",
    "idp.oidc.authorization:_interact", "idp.oidc.authorization:_page", "wtforms.form:FormMeta.__call__",
    "flask_wtf.csrf:generate_csrf", "idp.signin.services:SignIn.check_password",
    "idp.accounts.services:Authenticator.find", "idp.accounts.services:Authenticator.verify",
    "idp.signin.services:SignIn._count_check", "idp.ratelimit:clear",
    "idp.signin.services:SignIn.trusted_browser", "idp.signin.views:complete",
    "idp.signin.completion:sign_in", "idp.oidc.interaction_api:InteractionApi.finish",
    "idp.oidc.server:AuthorizationCodeGrant.save_authorization_code", "idp.oidc.authorization:respond",
    "idp.events:record_event", "idp.oidc.server:Provider.create_token_response",
)
# Requests (flows) of a scenario's warm-up, at most, and of the sample its round trips are counted on.
WARM_UP = 50
SAMPLE = 10


@dataclass
class Inputs:
    """What the scenarios send: the client's credentials and minted codes and tokens."""

    seeded: seed.Seeded
    minter: seed.Minter
    settings: dict

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
            # Those idp.db runs prepared on the driver are told to this listener too.
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


class Backends:
    """The PostgreSQL backends of the app's connections, each known from its connection (no round trip)."""

    def __init__(self, app: Flask):
        self.pids: set[int] = set()
        event.listen(app.extensions["idp"].database.engine, "connect", self.connected)

    def connected(self, dbapi_connection, _record) -> None:
        self.pids.add(dbapi_connection.info.backend_pid)

    def ticks(self) -> dict[int, int] | None:
        """CPU ticks of each live backend; None when PostgreSQL is not on this machine."""
        found = [stat for stat in map(proc.stat, self.pids) if stat is not None]
        return proc.ticks(found) if found or not self.pids else None


class Steps:
    """The CPU each step of a flow takes (its method and path, the tenant left out), around the
    app's WSGI call: what a flow's figure is made of."""

    def __init__(self, app: Flask):
        self.spent: dict[str, list[float]] = {}
        self.wsgi_app = app.wsgi_app
        app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        started = time.process_time()
        iterable = self.wsgi_app(environ, start_response)
        try:
            answer = list(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        step = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO'].removeprefix(TENANT)}"
        self.spent.setdefault(step, []).append(time.process_time() - started)
        return answer

    def report(self) -> list[str]:
        return [f"{sum(times) * 1000 / len(times):8.3f} ms  {step}" for step, times in self.spent.items()]


class Flows:
    """The code flow without the hash, as ``bench/run``'s ``flow`` scenario drives it."""

    def __init__(self, app: Flask, inputs: Inputs):
        self.app = app
        self.inputs = inputs
        self.members = iter(inputs.seeded.cheap_members * 1000)
        self.steps = Steps(app)

    def run(self) -> int:
        member = next(self.members)
        browser = self.app.test_client()
        for name, value in self.cookies(member).items():
            browser.set_cookie(name, value, domain=urlsplit(BASE_URL).hostname)
        params = pages.authorization_params(self.inputs.seeded.client_id, prompt="login")
        page = browser.get(f"{TENANT}/authorize", query_string=params, base_url=BASE_URL)
        after = browser.post(f"{TENANT}/login", base_url=BASE_URL, data={
            "interaction": pages.interaction(page.text),
            "identifier": member.login, "password": seed.PASSWORD, "csrf_token": pages.csrf(page.text)})
        code = pages.query_value(self.second_factor(browser, member, after.headers["Location"]), "code")
        auth = {"Authorization": self.inputs.basic}
        token = browser.post(f"{TENANT}/token", base_url=BASE_URL, headers=auth, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": seed.REDIRECT_URI,
            "code_verifier": seed.CODE_VERIFIER})
        return token.status_code

    def cookies(self, member: seed.Member) -> dict[str, str]:
        return member.cookies

    def second_factor(self, _browser, _member: seed.Member, callback: str) -> str:
        return callback

    def timing(self) -> None:
        """The timed runs start: what ``report`` tells is counted from here."""
        self.steps.spent.clear()

    def report(self) -> list[str]:
        return self.steps.report()

    def close(self) -> None:
        """Stop what the flows started."""


class CodeFlows(Flows):
    """``bench/run``'s ``flow+password+otp``: after the password, on a known browser that is not
    trusted, the code by email: the page to choose, the choice, the code's page (the code read
    from the outbox, as the bench's browsers read it: counted here, a fraction of a millisecond),
    the code. Ours' outbox worker, in its own process on another core when there is one, sends
    the emails, as in production; its CPU is not counted. Each flow has its own address
    (X-Forwarded-For, the app trusting one proxy) and the members take turns, so that no code
    limit is reached."""

    def __init__(self, app: Flask, inputs: Inputs):
        super().__init__(app, inputs)
        self.addresses = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(1, 1 << 24))
        cores = sorted(os.sched_getaffinity(0))
        command = [str(targets.BIN / "idp"), "outbox", "work"]
        if len(cores) > 1 and shutil.which("taskset"):
            command = ["taskset", "-c", str(cores[-1]), *command]
        self.worker = subprocess.Popen(  # noqa: S603 - our own command
            command, env={**os.environ, **targets.environment(inputs.settings)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.outbox = app.extensions["idp"].database.engine
        self.codes = self.codes_from = self.worker_from = 0

    def cookies(self, member: seed.Member) -> dict[str, str]:
        return pages.known_not_trusted(member.cookies)

    def timing(self) -> None:
        super().timing()
        self.worker_from = self._worker_ticks()
        self.codes_from = self.codes

    def report(self) -> list[str]:
        """The steps, and the CPU of the worker's process a flow (its email): on the server's core
        in ``bench/run``, not in this process's figure."""
        codes = self.codes - self.codes_from
        spent = (self._worker_ticks() - self.worker_from) * 1000 / proc.TICKS_PER_SECOND
        return [*super().report(), f"{spent / max(1, codes):8.3f} ms  the outbox worker (its own process)"]

    def _worker_ticks(self) -> int:
        found = proc.stat(self.worker.pid)
        return found.ticks if found is not None else 0

    def second_factor(self, browser, member: seed.Member, choose: str) -> str:
        self.codes += 1
        address = {"X-Forwarded-For": next(self.addresses)}
        page = browser.get(choose, base_url=BASE_URL, headers=address)
        verify = browser.post(choose, base_url=BASE_URL, headers=address, data={
            "channel": "email", "csrf_token": pages.csrf(page.text)}).headers["Location"]
        page = browser.get(verify, base_url=BASE_URL, headers=address)
        with self.outbox.connect() as connection:
            body = connection.exec_driver_sql(pages.OUTBOX_CODE, (member.login,)).scalar()
        return browser.post(verify, base_url=BASE_URL, headers=address, data={
            "code": pages.emailed_code(body), "csrf_token": pages.csrf(page.text),
        }).headers["Location"]

    def close(self) -> None:
        self.worker.terminate()
        self.worker.wait(10)


def batch(app: Flask, scenario: str, size: int, inputs: Inputs,
          flows: Flows | None) -> Callable[[], list[int]]:
    """``size`` requests (flows) ready to go, their inputs minted: calling it sends them, answers statuses."""
    if flows is not None:
        return lambda: [flows.run() for _ in range(size)]
    environs = requests_for(scenario, size, inputs)
    return lambda: [call(app, environ)[0] for environ in environs]


def scenario_size(scenario: str, requests: int) -> int:
    """Requests of a scenario, flows of a flow scenario (three requests each): a tenth."""
    return max(1, requests // 10) if scenario in FLOW_SCENARIOS else requests


def password_flows(app: Flask, inputs: Inputs, kind: type[Flows] = Flows) -> Flows:
    """``bench/run``'s ``flow+password``: the same flow on a trusted browser, by an app at the
    configured argon2id cost whose members' hashes were made at that cost. Prints the CPU of
    one argon2id verify alone, the bound on password sign-ins per core."""
    settings = dataclasses.asdict(app.extensions["idp"].settings)
    costs = {name: getattr(Settings, name) for name in seed.CHEAP_ARGON2}
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
    flows = kind(real, inputs)
    flows.members = iter(inputs.seeded.members * 1000)
    return flows


def code_flows(app: Flask, inputs: Inputs) -> Flows:
    return password_flows(app, inputs, CodeFlows)


FLOW_SCENARIOS.update({"flow": Flows, "flow+password": password_flows, "flow+password+otp": code_flows})


@dataclass
class Measure:
    scenario: str
    requests: int
    cpu_ms: float
    # CPU of the PostgreSQL backends serving those requests; None if PostgreSQL is not local.
    postgres_cpu_ms: float | None
    postgres: float
    redis: float
    statuses: Counter
    # The statements of one request (as SQLAlchemy sends them), with how many times each.
    statements: list[str]
    # A flow's steps, with the CPU each took (the timed runs' mean).
    steps: list[str]


def measure(app: Flask, scenario: str, count: int, inputs: Inputs, counts: Counts, backends: Backends, *,
            repeat: int, profile: Path | None) -> Measure:
    flows = FLOW_SCENARIOS[scenario](app, inputs) if scenario in FLOW_SCENARIOS else None
    try:
        return _measured(app, scenario, count, inputs, counts, backends, flows, repeat=repeat,
                         profile=profile)
    finally:
        if flows is not None:
            flows.close()


def _measured(app: Flask, scenario: str, count: int, inputs: Inputs, counts: Counts, backends: Backends,
              flows: Flows | None, *, repeat: int, profile: Path | None) -> Measure:
    # Warm-up: imports, templates, pool, key material.
    batch(app, scenario, min(WARM_UP, count), inputs, flows)()
    sample = SAMPLE
    own = flows is not None and flows.app is not app  # the scenario's own app: its round trips
    if own:
        counts, backends = Counts(flows.app), Backends(flows.app)
    counts.redis = 0
    counts.statements = []
    with counts.counting():
        batch(app, scenario, sample, inputs, flows)()
    trips = counts.postgres()
    if own:
        counts.trace.unlink()
    redis_calls = counts.redis
    statements = Counter(text[:150] for text in counts.statements)
    # The pool again (counting closed its connections): a backend's start is not a request's cost.
    batch(app, scenario, min(sample, count), inputs, flows)()
    # CPU time, not wall time: waits on PostgreSQL and Redis are not this process's cost.
    # Other processes still slow ours down (caches, frequency): the best of ``repeat`` runs is kept.
    profiler = cProfile.Profile(time.process_time) if profile else None
    statuses: Counter = Counter()
    best, best_postgres = float("inf"), float("inf")
    if flows is not None:
        flows.timing()
    for _ in range(repeat):
        run = batch(app, scenario, count, inputs, flows)
        gc.collect()
        if profiler:
            profiler.enable()
        postgres_before = backends.ticks()
        started = time.process_time()
        statuses.update(run())
        best = min(best, time.process_time() - started)
        postgres_after = backends.ticks()
        if postgres_before is not None and postgres_after is not None:
            best_postgres = min(best_postgres, proc.spent_ms(postgres_before, postgres_after))
        if profiler:
            profiler.disable()
    if profiler:
        _write_profile(profiler, profile, scenario)
    postgres_cpu_ms = None if best_postgres == float("inf") else best_postgres / count
    return Measure(scenario, count, best * 1000 / count, postgres_cpu_ms, trips / sample,
                   redis_calls / sample, statuses,
                   [f"{n / sample:4.1f} x {text}" for text, n in statements.items()],
                   flows.report() if flows is not None else [])


def found(spec: str) -> tuple[Any, str]:
    """What holds the function ``module:qualified.name`` (its module or class), and its name there;
    LookupError if there is no such function."""
    module_name, _, qualified = spec.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        raise LookupError(f"no module {module_name}") from None
    *path, name = qualified.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    if not callable(getattr(owner, name, None)):
        raise LookupError(f"no function {qualified} in {module_name}")
    return owner, name


class Marks:
    """The child's calls to ``MARK``, in order, each noted as an event: a scenario's requests begin
    or end, a function named by ``--functions`` is entered or left (only while requests run).
    Callgrind writes out a count before each call: the count written before event ``k`` is what
    ran since event ``k - 1``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.counting = False

    def mark(self, kind: str, name: str) -> None:
        self.events.append((kind, name))
        os.getppid()

    def wrap(self, spec: str) -> None:
        """Mark each call of the function ``module:qualified.name`` as it starts and ends."""
        owner, name = found(spec)
        declared = vars(owner).get(name) if isinstance(owner, type) else None
        kind = type(declared) if isinstance(declared, (staticmethod, classmethod)) else None
        function = declared.__func__ if kind is not None else getattr(owner, name)
        marks = self

        @functools.wraps(function)
        def marked(*args, **kwargs):
            if not marks.counting:
                return function(*args, **kwargs)
            marks.mark("enter", spec)
            try:
                return function(*args, **kwargs)
            finally:
                marks.mark("exit", spec)

        setattr(owner, name, kind(marked) if kind is not None else marked)


def mark_instructions(app: Flask, scenarios: list[str], requests: int, inputs: Inputs, marks: Marks) -> None:
    """Under callgrind: each scenario's warm-up, then its requests between two marks."""
    for scenario in scenarios:
        count = scenario_size(scenario, requests)
        flows = FLOW_SCENARIOS[scenario](app, inputs) if scenario in FLOW_SCENARIOS else None
        try:
            batch(app, scenario, min(WARM_UP, count), inputs, flows)()
            run = batch(app, scenario, count, inputs, flows)
            gc.collect()
            marks.mark("begin", scenario)
            marks.counting = True
            try:
                run()
            finally:
                marks.counting = False
            marks.mark("end", scenario)
        finally:
            if flows is not None:
                flows.close()


@dataclass
class Counted:
    """Instructions per request (per flow) of a scenario, and of each function marked in it:
    ``functions`` maps each to its instructions (the calls it makes included) and calls."""

    total: float
    functions: dict[str, tuple[float, float]]


def attribute(events: list[tuple[str, str]], counts: list[int],
              requests: dict[str, int]) -> dict[str, Counted]:
    """What each scenario and each function in it counted, per request, from the child's events
    and callgrind's counts (``counts[k]``: what ran before event ``k``, since the one before)."""
    if len(counts) != len(events):
        raise RuntimeError(f"expected {len(events)} callgrind dumps, got {len(counts)}: "
                           f"something else called {MARK}")
    counted: dict[str, Counted] = {}
    scenario, begun, open_calls = "", 0, []
    spent: dict[str, list[float]] = {}
    for index, (kind, name) in enumerate(events):
        if kind == "begin":
            scenario, begun, spent = name, index, {}
        elif kind == "enter":
            open_calls.append((name, index))
        elif kind == "exit":
            entered, start = open_calls.pop()
            if entered != name:
                raise RuntimeError(f"{name} left while {entered} ran")
            tally = spent.setdefault(name, [0.0, 0.0])
            if all(other != name for other, _ in open_calls):  # a call within itself is counted once
                tally[0] += sum(counts[start + 1:index + 1])
            tally[1] += 1
        elif kind == "end":
            size = requests[scenario]
            counted[scenario] = Counted(sum(counts[begun + 1:index + 1]) / size,
                                        {function: (instructions / size, calls / size)
                                         for function, (instructions, calls) in spent.items()})
    return counted


def callgrind_total(text: str) -> int:
    """The instructions (``Ir``, the first event) of one callgrind output file."""
    found = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise ValueError("no totals in callgrind's output")
    return int(found.group(1))


def segments(directory: Path, prefix: str) -> list[int]:
    """The counts of each dump callgrind wrote (``<prefix>.1``, ``.2``, ...), in order."""
    dumps = sorted(directory.glob(f"{prefix}.*"), key=lambda path: int(path.suffix[1:]))
    return [callgrind_total(path.read_text(errors="replace")) for path in dumps]


def instructions(args: argparse.Namespace) -> dict[str, Counted]:
    """Instructions per request of each scenario (and of the functions named), counted by
    callgrind in a child process."""
    with tempfile.TemporaryDirectory(prefix="bench-cpu-callgrind-") as directory:
        out = Path(directory)
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out",
            f"--dump-before={MARK}", f"--log-file={out}/valgrind.log",
            sys.executable, "-m", "bench.cpu", "--callgrind-child", "--events", str(out / "events.json"),
            "--requests", str(args.callgrind_requests),
            "--scenarios", ",".join(args.scenarios), "--database-url", args.database_url,
            "--redis-url", args.redis_url, "--functions", ",".join(args.functions),
        ]
        # The same hash seed every time: dict and set layouts, hence the counts, repeat.
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"},  # noqa: S603
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = out / "valgrind.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"callgrind run failed ({done.returncode}): {done.stderr[-2000:]}{tail}")
        counts = segments(out, "callgrind.out")
        events = [tuple(event) for event in json.loads((out / "events.json").read_text())]
    return attribute(events, counts, {scenario: scenario_size(scenario, args.callgrind_requests)
                                      for scenario in args.scenarios})


def breakdown(counted: Counted) -> str:
    """The functions' lines of a scenario, the costliest first: Minstr and calls per request, and
    the share of the request's instructions (the calls they make included)."""
    lines = [f"{'':14} {'Minstr':>7} {'calls':>6} {'share':>6}  function (what it calls included)"]
    for function, (instructions, calls) in sorted(counted.functions.items(), key=lambda item: -item[1][0]):
        share = instructions / counted.total
        lines.append(f"{'':14} {instructions / 1e6:7.3f} {calls:6.1f} {share:6.1%}  {function}")
    return "\n".join(lines)


def _write_profile(profiler: cProfile.Profile, directory: Path, scenario: str) -> None:
    """<scenario>.prof (for snakeviz or pstats) and <scenario>.txt: the top functions, both ways."""
    directory.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(directory / f"{scenario}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(80)
    (directory / f"{scenario}.txt").write_text(text.getvalue())


def soak(app: Flask, requests: int, inputs: Inputs, *, allocations: bool) -> None:
    """Userinfo ``requests`` times, printing the RSS as it goes (and what grew, with tracemalloc)."""
    access, _refresh = inputs.minter.tokens(1)[0]
    headers = {"Authorization": f"Bearer {access}"}
    step = max(1, requests // 10)
    if allocations:
        tracemalloc.start(10)
    before = tracemalloc.take_snapshot() if allocations else None
    print(f"soak: userinfo x {requests:,}; RSS {proc.rss_mib('self'):.1f} MiB at start")
    for done in range(1, requests + 1):
        call(app, _environ(f"{TENANT}/userinfo", headers=headers))
        if done % step == 0:
            print(f"  after {done:>9,}: RSS {proc.rss_mib('self'):.1f} MiB")
    if before is not None:
        for stat in tracemalloc.take_snapshot().compare_to(before, "traceback")[:10]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  {stat.traceback[-1]}")


def build(database_url: str, redis_url: str, keys_dir: Path, *, members: int = 8) -> tuple[Flask, Inputs]:
    settings = {
        "env": "development", "secret_key": "bench-cpu-secret-key-0123456789-abcdefghijklmnop",
        "base_url": BASE_URL, "database_url": database_url, "redis_url": redis_url,
        "keys_dir": str(keys_dir), "cookie_secure": False, "authorization_code_ttl": 3600,
        "tenants_dir": targets.tenants_dir(keys_dir),
        # As bench/run's browsers, the code flows' each have an address (X-Forwarded-For).
        "trusted_proxies": 1,
        **seed.CHEAP_ARGON2,
    }
    seed.reset_database(database_url)
    # The production server's logging (idp.web.server: a JSON line per request), written to
    # nowhere: what it costs is counted.
    config = logs.dict_config("INFO")
    config["handlers"]["json"]["stream"] = open(os.devnull, "w")  # noqa: SIM115 - for the process
    logging.config.dictConfig(config)
    logs.gather_only_what_lines_hold()
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    seeded = seed.seed(settings, members=members, cheap=cheap)
    app = create_app(settings)
    return app, Inputs(seeded, seed.Minter(settings, seeded), settings)


def members_for(scenarios: list[str], requests: int, repeat: int) -> int:
    """Members to seed: the code flows take turns over enough of them that none asks more codes
    than an account may (5 in 15 minutes) over the run's flows, its warm-ups included."""
    if "flow+password+otp" not in scenarios:
        return 8
    flows = scenario_size("flow+password+otp", requests)
    codes = min(WARM_UP, flows) + SAMPLE + min(SAMPLE, flows) + repeat * flows
    return max(8, -(-codes // 4))


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
    parser.add_argument("--callgrind", action=argparse.BooleanOptionalAction,
                        help="count instructions per request with valgrind's callgrind (default: if valgrind "
                        "is installed; about 50 times slower than the requests themselves)")
    parser.add_argument("--callgrind-requests", type=int, default=50,
                        help="requests counted by callgrind per scenario (default 50; flows: a tenth)")
    parser.add_argument("--functions", default="",
                        help="with callgrind: the instructions per request spent in each of these functions "
                        "(module:qualified.name, comma-separated; 'sign-in': the sign-in's parts)")
    # The child process that runs under callgrind, and where it writes its marks.
    parser.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind is None:
        args.callgrind = shutil.which("valgrind") is not None
    named = [name.strip() for name in args.functions.split(",") if name.strip()]
    args.functions = list(SIGN_IN_PARTS) if named == ["sign-in"] else named
    malformed = [name for name in args.functions if not MARKABLE.fullmatch(name)]
    if malformed:
        parser.error(f"--functions: not module:qualified.name: {', '.join(malformed)}")
    for name in args.functions:
        try:
            found(name)
        except LookupError as missing:
            parser.error(f"--functions: {name}: {missing}")
    if args.functions and not args.callgrind:
        parser.error("--functions counts with callgrind: leave out --no-callgrind")
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.redis_url.rstrip("/").endswith("/15"):
        parser.error("--redis-url: Redis db 15 belongs to the test suite")
    if not seed.is_bench_database(args.database_url):
        parser.error("--database-url must name a database whose name starts with idp_bench")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.callgrind_child:
        marks = Marks()
        for function in args.functions:
            marks.wrap(function)
        with tempfile.TemporaryDirectory(prefix="bench-cpu-keys-") as keys_dir:
            app, inputs = build(args.database_url, args.redis_url, Path(keys_dir),
                                members=members_for(args.scenarios, args.requests, args.repeat))
            mark_instructions(app, args.scenarios, args.requests, inputs, marks)
            inputs.minter.close()
        args.events.write_text(json.dumps(marks.events))
        return 0
    counted: dict[str, Counted] = {}
    if args.callgrind:
        print(f"counting instructions: callgrind, {args.callgrind_requests} requests per scenario …",
              flush=True)
        counted = instructions(args)
    absent = "n/a" if shutil.which("valgrind") is None else "-"
    with tempfile.TemporaryDirectory(prefix="bench-cpu-keys-") as keys_dir:
        app, inputs = build(args.database_url, args.redis_url, Path(keys_dir),
                            members=members_for(args.scenarios, args.requests, args.repeat))
        counts = Counts(app)
        backends = Backends(app)
        try:
            print(f"{'scenario':14} {'requests':>8} {'CPU ms/req':>10} {'Minstr/req':>10} {'PG ms/req':>9} "
                  f"{'PG trips':>8} {'Redis':>6}  statuses")
            for scenario in args.scenarios:
                count = scenario_size(scenario, args.requests)
                result = measure(app, scenario, count, inputs, counts, backends, repeat=args.repeat,
                                 profile=args.profile)
                statuses = " ".join(f"{code}x{n}" for code, n in sorted(result.statuses.items()))
                minstr = f"{counted[scenario].total / 1e6:.2f}" if scenario in counted else absent
                postgres = "n/a" if result.postgres_cpu_ms is None else f"{result.postgres_cpu_ms:.3f}"
                print(f"{scenario:14} {result.requests:8} {result.cpu_ms:10.3f} {minstr:>10} {postgres:>9} "
                      f"{result.postgres:8.1f} {result.redis:6.1f}  {statuses}", flush=True)
                for step in result.steps:
                    print(f"{'':14} {step}")
                if args.statements:
                    for statement in result.statements:
                        print(f"    {statement}")
                if scenario in counted and counted[scenario].functions:
                    print(breakdown(counted[scenario]))
            if absent == "n/a":
                print("Minstr/req: n/a (no valgrind)")
            if args.soak:
                soak(app, args.soak, inputs, allocations=args.allocations)
        finally:
            counts.trace.unlink(missing_ok=True)
            inputs.minter.close()
            app.extensions["idp"].database.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

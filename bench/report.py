"""Results of a bench run and the table printed at the end (pure: no I/O but ``render``'s string)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

# Scenario names in report order, with the unit their rate is counted in.
SCENARIOS = {
    "discovery": "req/s",
    "jwks": "req/s",
    "token": "req/s",
    "refresh": "req/s",
    "userinfo": "req/s",
    "introspection": "req/s",
    "revocation": "req/s",
    "flow": "flows/s",
    "flow+password": "flows/s",
    "flow+password+otp": "flows/s",
}

# The aims, ours and the peer in the same run on one core each: ours/peer at least this much.
PEER_TARGETS = {
    "discovery": 0.5, "jwks": 0.5, "token": 0.5, "refresh": 0.5, "userinfo": 0.5, "introspection": 0.5,
    "revocation": 0.5, "flow": 0.25,
}
# Where ours/peer at least this much is reached, the endpoint leads.
STRETCH = 1.0
# Password sign-ins against the bound one argon2id verify per sign-in sets on a core: at least this much.
BOUND_TARGETS = {"flow+password": 0.8, "flow+password+otp": 0.6}
# Each serving process under this, and flat over a soak of SOAK_AIM requests: none grows by FLAT_GROWTH.
RSS_LIMIT_MIB = 120.0
FLAT_GROWTH = 0.05
SOAK_AIM = 100_000


@dataclass
class Result:
    """One scenario against one provider, its rounds taken together."""

    scenario: str
    target: str  # "ours" or "peer"
    count: int  # requests, or flows for the flow scenarios
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    # For flows: the p99 of a single request inside the flows.
    request_p99_ms: float | None = None
    # CPU per request (per flow for flows) of the server's processes, and of the PostgreSQL
    # backends serving the bench database (ours only), over the scenario.
    cpu_ms: float | None = None
    postgres_cpu_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    # The rate of each round (the side's turns, alternating with the other's).
    round_rates: list[float] = field(default_factory=list)
    # Password sign-ins: the side's argon2id verify on the server core (ours: argon2-cffi's, the
    # bound; the peer: its own library's), the mean of its readings just before each round, in
    # wall time and in CPU time.
    argon2_ms: float | None = None
    argon2_cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Memory:
    """Resident memory of each serving process (pid -> MiB): after the warm-up, or during the soak
    after a number of its requests."""

    target: str
    phase: str  # "warm-up" or "soak"
    after_requests: int
    rss_mib: dict[int, float]

    @property
    def label(self) -> str:
        return "after warm-up" if self.phase == "warm-up" else f"soak, after {self.after_requests:,} requests"


@dataclass
class Run:
    machine: dict[str, str]
    settings: dict[str, object]
    results: list[Result] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    argon2_ms: float | None = None
    driver_ceiling: dict[str, float] = field(default_factory=dict)

    def result(self, scenario: str, target: str) -> Result | None:
        return next((r for r in self.results if r.scenario == scenario and r.target == target), None)

    def soak(self, target: str) -> tuple[Memory, Memory] | None:
        """The first and the last reading of one provider's soak."""
        readings = [m for m in self.memory if m.target == target and m.phase == "soak"]
        return (readings[0], readings[-1]) if len(readings) > 1 else None

    def as_dict(self) -> dict:
        data = asdict(self)
        for item, result in zip(data["results"], self.results, strict=True):
            item["rate"] = round(result.rate, 1)
        return data


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Turn:
    """One side's run of a scenario in one round: what it served, and the CPU it took."""

    count: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    postgres_cpu_ms: float | None
    notes: list[str] = field(default_factory=list)
    # The flows' own durations and those of their requests (the async driver's).
    flow_ms: list[float] | None = None
    request_ms: list[float] | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def pooled(scenario: str, target: str, turns: list[Turn]) -> Result:
    """One side's rounds of a scenario taken together: its count over its time, its CPU over its
    count; the percentiles of all its flows, or for wrk's (which gives each run's only) the
    median of the p50s and the highest p99."""
    count = sum(turn.count for turn in turns)
    flow_ms = [ms for turn in turns for ms in turn.flow_ms or ()]
    request_ms = [ms for turn in turns for ms in turn.request_ms or ()]
    sampled = any(turn.flow_ms is not None for turn in turns)
    result = Result(
        scenario, target, count, sum(turn.seconds for turn in turns),
        percentile(flow_ms, 0.5) if sampled else statistics.median(turn.p50_ms for turn in turns),
        percentile(flow_ms, 0.99) if sampled else max(turn.p99_ms for turn in turns),
        sum(turn.errors for turn in turns),
        request_p99_ms=percentile(request_ms, 0.99) if sampled else None,
        notes=list(dict.fromkeys(note for turn in turns for note in turn.notes)),
        round_rates=[turn.rate for turn in turns],
    )
    if count > 0:
        result.cpu_ms = sum(turn.cpu_ms for turn in turns) / count
        postgres = [turn.postgres_cpu_ms for turn in turns]
        if None not in postgres:
            result.postgres_cpu_ms = sum(ms for ms in postgres if ms is not None) / count
    return result


def ratio(ours: Result | None, peer: Result | None) -> float | None:
    if ours is None or peer is None or peer.rate == 0:
        return None
    return ours.rate / peer.rate


def of_the_bound(rate: float, verify_ms: float) -> float:
    """Sign-ins a second as a fraction of argon2id's bound: of the 1000 / ``verify_ms`` a core
    could make doing nothing but verify."""
    return rate * verify_ms / 1000


def verdict(value: float | None, target: float, stretch: float | None = None) -> str:
    if value is None:
        return "-"
    if stretch is not None and value >= stretch:
        return "stretch"
    return "pass" if value >= target else "FAIL"


def growth(first: Memory, last: Memory) -> dict[int, float]:
    """MiB each process grew between two readings (the processes in both)."""
    return {pid: last.rss_mib[pid] - rss for pid, rss in first.rss_mib.items() if pid in last.rss_mib}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(result: Result | None) -> list[str]:
    if result is None:
        return ["-", "-", "-", "-"]
    errors = str(result.errors) + ("*" if result.notes else "")
    return [f"{result.rate:,.0f}", f"{result.p50_ms:.1f}", f"{result.p99_ms:.1f}", errors]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def render(run: Run) -> str:
    """The summary printed at the end of a run."""
    rows = [["scenario", "unit", "ours", "p50 ms", "p99 ms", "err", "peer", "p50 ms", "p99 ms", "err",
             "ours/peer", "target", "met"]]
    for scenario, unit in SCENARIOS.items():
        ours, peer = run.result(scenario, "ours"), run.result(scenario, "peer")
        if ours is None and peer is None:
            continue
        value = ratio(ours, peer)
        target = PEER_TARGETS.get(scenario)
        aim = ["-", "-"] if target is None else [
            f">= {target:.2f}", verdict(value, target, STRETCH if target >= 0.5 else None)]
        rows.append([scenario, unit, *_cell(ours), *_cell(peer), f"{value:.2f}" if value else "-", *aim])
    lines = _table(rows)
    notes = [f"  * {r.target} {r.scenario}: {note}" for r in run.results for note in r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    lines += _rounds(run)
    lines += _cpu(run)
    if "services" in run.settings:
        lines += ["", f"PostgreSQL and Redis during the run: {run.settings['services']}"]
    flow_requests = [r for r in run.results if r.request_p99_ms is not None]
    if flow_requests:
        lines += ["", "p99 of one request inside the flows (ms):"]
        lines += [f"  {r.target} {r.scenario}: {r.request_p99_ms:.1f}" for r in flow_requests]
    lines += _memory(run)
    if run.argon2_ms:
        lines += ["", f"argon2id verify at the configured parameters: {run.argon2_ms:.1f} ms on the server "
                  f"core at the start, so at most {1000 / run.argon2_ms:.1f} password sign-ins/s per core"]
    for scenario, target in BOUND_TARGETS.items():
        ours = run.result(scenario, "ours")
        verify_ms = (ours.argon2_ms or run.argon2_ms) if ours else None
        if ours is not None and verify_ms:
            share = of_the_bound(ours.rate, verify_ms)
            lines.append(f"  ours {scenario}: {ours.rate:.1f}/s = {share:.2f} x the bound of argon2id's "
                         f"{verify_ms:.1f} ms (target >= {target:.2f}: {verdict(share, target)})")
    lines += _hash_shares(run)
    if run.driver_ceiling:
        lines += ["", "load generators against a trivial server (req/s; their ceiling):"]
        lines += [f"  {name}: {value:,.0f}" for name, value in run.driver_ceiling.items()]
    return "\n".join(lines)


def _hash_shares(run: Run) -> list[str]:
    """Each side's sign-ins against its own argon2id: the peer's library (@node-rs/argon2) is not
    ours, so the peer is put against its own verify, read the same way; and how much of a flow's
    CPU that verify alone is, for both (what a sign-in spends beyond its hash)."""
    lines = []
    for scenario in BOUND_TARGETS:
        for target, library in (("ours", "argon2-cffi"), ("peer", "@node-rs/argon2")):
            result = run.result(scenario, target)
            if result is None or not result.argon2_ms or not result.argon2_cpu_ms or not result.cpu_ms:
                continue
            share = of_the_bound(result.rate, result.argon2_ms)
            lines.append(f"  {target} {scenario}: {result.rate:.1f}/s = {share:.2f} x the bound of its own "
                         f"argon2id ({library}, {result.argon2_ms:.1f} ms); that verify alone is "
                         f"{result.argon2_cpu_ms:.1f} of the {result.cpu_ms:.1f} CPU ms of a flow "
                         f"({result.argon2_cpu_ms / result.cpu_ms:.0%})")
    if lines:
        lines.insert(0, "each side against its own argon2id (the verify alone, on the server core, before "
                        "each round):")
    return ["", *lines] if lines else []


def _rounds(run: Run) -> list[str]:
    """ours/peer in each round, where a scenario ran more than one: the spread the machine's load
    gives the ratio above (taken over all rounds)."""
    lines = []
    for scenario in SCENARIOS:
        ours, peer = run.result(scenario, "ours"), run.result(scenario, "peer")
        if ours is None or peer is None or len(ours.round_rates) < 2:
            continue
        each = [f"{mine / theirs:.2f}" if theirs else "-"
                for mine, theirs in zip(ours.round_rates, peer.round_rates, strict=False)]
        lines.append(f"  {scenario}: {', '.join(each)}")
    return ["", "ours/peer in each round (ours and the peer taking turns):", *lines] if lines else []


def _cpu(run: Run) -> list[str]:
    """CPU per request (per flow) of each side, PostgreSQL's apart: robust to the machine's load."""
    rows = [["scenario", "ours", "PostgreSQL", "ours+PG", "peer", "peer/ours", "peer/(ours+PG)"]]
    for scenario in SCENARIOS:
        ours, peer = run.result(scenario, "ours"), run.result(scenario, "peer")
        mine = ours.cpu_ms if ours else None
        postgres = ours.postgres_cpu_ms if ours else None
        theirs = peer.cpu_ms if peer else None
        if mine is None and theirs is None:
            continue
        total = None if mine is None or postgres is None else mine + postgres
        rows.append([scenario, _ms(mine), _ms(postgres), _ms(total), _ms(theirs),
                     f"{theirs / mine:.2f}" if theirs and mine else "-",
                     f"{theirs / total:.2f}" if theirs and total else "-"])
    if len(rows) == 1:
        return []
    return ["", "CPU ms per request (per flow for flows), from /proc: the server's processes, and the "
            "PostgreSQL backends serving the bench database:", *_table(rows)]


def _memory(run: Run) -> list[str]:
    if not run.memory:
        return []
    lines = ["", "RSS per serving process (MiB):"]
    for memory in run.memory:
        values = ", ".join(f"{value:.0f}" for value in memory.rss_mib.values())
        lines.append(f"  {memory.target} {memory.label}: {values}")
    soak = run.soak("ours")
    if soak is not None:
        first, last = soak
        grown = growth(first, last)
        largest = max(max(m.rss_mib.values(), default=0.0) for m in run.memory if m.target == "ours")
        flat = all(value < FLAT_GROWTH * first.rss_mib[pid] for pid, value in grown.items())
        met = largest < RSS_LIMIT_MIB and flat and bool(grown) and last.after_requests >= SOAK_AIM
        lines.append(
            f"  ours over the soak, first vs last reading ({last.after_requests:,} requests): "
            + ", ".join(f"{first.rss_mib[pid]:.1f} -> {last.rss_mib[pid]:.1f} ({value:+.1f})"
                        for pid, value in grown.items()))
        short = "" if last.after_requests >= SOAK_AIM else f"; only {last.after_requests:,} requests"
        lines.append(f"  target < {RSS_LIMIT_MIB:.0f} MiB per worker (largest {largest:.1f}) and flat over "
                     f"{SOAK_AIM:,} requests (each grows < {FLAT_GROWTH:.0%}{short}): "
                     f"{'pass' if met else 'FAIL'}")
    return lines

"""Results of a bench run and the table printed at the end (pure: no I/O but ``render``'s string)."""

from __future__ import annotations

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


@dataclass
class Result:
    """One scenario against one provider."""

    scenario: str
    target: str  # "ours" or "peer"
    count: int  # requests, or flows for the flow scenarios
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    # For flows: the p99 of a single request inside the flows.
    request_p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Memory:
    """Resident memory of each server process (MiB), after a number of requests."""

    target: str
    after_requests: int
    rss_mib: list[float]


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

    def as_dict(self) -> dict:
        data = asdict(self)
        for item, result in zip(data["results"], self.results, strict=True):
            item["rate"] = round(result.rate, 1)
        return data


def ratio(ours: Result | None, peer: Result | None) -> float | None:
    if ours is None or peer is None or peer.rate == 0:
        return None
    return ours.rate / peer.rate


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
             "ours/peer"]]
    for scenario, unit in SCENARIOS.items():
        ours, peer = run.result(scenario, "ours"), run.result(scenario, "peer")
        if ours is None and peer is None:
            continue
        value = ratio(ours, peer)
        rows.append([scenario, unit, *_cell(ours), *_cell(peer), f"{value:.2f}" if value else "-"])
    lines = _table(rows)
    notes = [f"  * {r.target} {r.scenario}: {note}" for r in run.results for note in r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    flow_requests = [r for r in run.results if r.request_p99_ms is not None]
    if flow_requests:
        lines += ["", "p99 of one request inside the flows (ms):"]
        lines += [f"  {r.target} {r.scenario}: {r.request_p99_ms:.1f}" for r in flow_requests]
    if run.memory:
        lines += ["", "RSS per process (MiB):"]
        for memory in run.memory:
            values = ", ".join(f"{value:.0f}" for value in memory.rss_mib)
            lines.append(f"  {memory.target} after {memory.after_requests:,} requests: {values}")
    if run.argon2_ms:
        bound = 1000 / run.argon2_ms
        lines += ["", f"argon2id verify at the configured parameters: {run.argon2_ms:.1f} ms on the server "
                  f"core, so at most {bound:.1f} password sign-ins/s per core"]
        ours = run.result("flow+password", "ours")
        if ours is not None:
            lines.append(f"  ours flow+password: {ours.rate:.1f}/s = {ours.rate / bound:.2f} x that bound")
    if run.driver_ceiling:
        lines += ["", "load generators against a trivial server (req/s; their ceiling):"]
        lines += [f"  {name}: {value:,.0f}" for name, value in run.driver_ceiling.items()]
    return "\n".join(lines)

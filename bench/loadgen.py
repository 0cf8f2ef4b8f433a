"""wrk, pinned to the load core, driven by bench/wrk/scenario.lua."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk" / "scenario.lua"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str = ""
    body: str = ""

    def line(self) -> str:
        return "\t".join((self.method, self.path, self.authorization, self.body))


@dataclass
class Measure:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    exhausted: int


def run_wrk(base_url: str, requests: list[Request], *, mode: str, seconds: float, connections: int,
            core: int, workdir: Path, threads: int = 1) -> Measure:
    """Send ``requests`` (cycled, consumed once, or chained refreshes) for ``seconds``."""
    path = workdir / "wrk-requests.tsv"
    path.write_text("".join(request.line() + "\n" for request in requests))
    env = {**os.environ, "BENCH_REQUESTS": str(path), "BENCH_MODE": mode, "BENCH_THREADS": str(threads)}
    command = ["taskset", "-c", str(core), "wrk", "-t", str(threads), "-c", str(connections),
               "-d", f"{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(SCRIPT), base_url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False,  # noqa: S603
                          timeout=seconds + 60)
    summary = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("{")), None)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(summary)
    errors = sum(data[key] for key in ("connect", "read", "write", "status", "timeout"))
    return Measure(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=errors,
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, exhausted=data["exhausted"],
    )

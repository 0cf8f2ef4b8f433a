"""Waiting for what happens a moment later (``until``), and timing comparisons for the
no-enumeration tests: medians of interleaved requests.

A difference in the work two requests do shows in every measurement; a burst of load from
other processes on a shared machine seldom shows in three measurements in a row. So the
probes are measured up to three times, and take as long when one measurement finds their
medians within the tolerance.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ATTEMPTS = 3


def interleaved_medians(probes: dict[str, Callable[[], object]], *, rounds: int,
                        warm_up: int) -> dict[str, float]:
    """Each probe ``rounds`` times after ``warm_up`` uncounted rounds, interleaved, each first
    in every other round (none always follows another): its median, in milliseconds."""
    timings: dict[str, list[float]] = {name: [] for name in probes}
    names = list(probes)
    for round_ in range(warm_up + rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            started = time.perf_counter()
            probes[name]()
            elapsed = (time.perf_counter() - started) * 1000
            if round_ >= warm_up:
                timings[name].append(elapsed)
    return {name: statistics.median(values) for name, values in timings.items()}


def assert_as_long(probes: dict[str, Callable[[], object]], *, rounds: int, warm_up: int,
                   tolerance: Callable[[float], float]) -> dict[str, float]:
    """The probes' medians (the slowest and the fastest) differ by at most
    ``tolerance(the slowest median)`` ms in one of ``ATTEMPTS`` measurements; that
    measurement's medians (each one is printed)."""
    seen = []
    for _ in range(ATTEMPTS):
        medians = interleaved_medians(probes, rounds=rounds, warm_up=warm_up)
        print(" ".join(f"{name}: {ms:.1f} ms;" for name, ms in medians.items()))
        seen.append(medians)
        slowest, fastest = max(medians.values()), min(medians.values())
        if slowest - fastest <= tolerance(slowest):
            return medians
    raise AssertionError(f"the medians differ in every measurement: {seen}")


def until(condition: Callable[[], object], seconds: float = 20, interval: float = 0.1) -> None:
    """Wait until ``condition()`` holds, checking every ``interval`` seconds; fail past ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(interval)

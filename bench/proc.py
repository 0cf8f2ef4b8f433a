"""What Linux's /proc says of a process: CPU time, process group, resident memory; and where the
machine's shared services run.

CPU time is read as the kernel accounts it (``utime`` + ``stime`` in
``/proc/<pid>/stat``, in clock ticks), so it can be read for any local process:
a server's workers, a PostgreSQL backend. Unlike a rate, it barely moves when
others load the machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    pgrp: int
    # utime + stime: CPU the process itself spent, in clock ticks.
    ticks: int
    # cutime + cstime: CPU of its children that ended and were waited for.
    children_ticks: int


def parse_stat(text: str) -> Stat:
    """One ``/proc/<pid>/stat`` line (proc(5)): the command name, in parentheses, may hold spaces."""
    pid, _, rest = text.partition(" (")
    fields = rest.rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5) (state): ppid is 4, pgrp 5, utime 14, stime 15, cutime 16, cstime 17.
    return Stat(pid=int(pid), ppid=int(fields[1]), pgrp=int(fields[2]),
                ticks=int(fields[11]) + int(fields[12]), children_ticks=int(fields[13]) + int(fields[14]))


def stat(pid: int) -> Stat | None:
    """None when the process is gone (or not on this machine)."""
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def group(pgid: int) -> list[Stat]:
    """The processes of one process group, by pid."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            found = stat(int(entry.name))
            if found is not None and found.pgrp == pgid:
                members.append(found)
    return sorted(members, key=lambda member: member.pid)


def serving(members: list[Stat]) -> list[Stat]:
    """The processes of a server's group that serve requests: its workers if the leader started
    some (a pre-forking server's arbiter serves none), else the leader itself."""
    workers = [member for member in members if member.pid != member.pgrp]
    return workers or members


def ticks(members: list[Stat]) -> dict[int, int]:
    """CPU ticks of each process, those of its ended children included (a worker that was
    replaced keeps counting, in its parent)."""
    return {member.pid: member.ticks + member.children_ticks for member in members}


def spent_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU ms between two readings of ``ticks``; a process that appeared in between counts in full."""
    spent = sum(value - before.get(pid, 0) for pid, value in after.items())
    return spent * 1000 / TICKS_PER_SECOND


def rss_mib(pid: int | str) -> float:
    """Resident memory (``VmRSS``) of a process, ``"self"`` for this one; 0 once it is gone."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# The shared services' processes, by the name the kernel gives them (``/proc/<pid>/comm``): a
# PostgreSQL server's postmaster and backends, a Redis server.
SERVICES = ("postgres", "redis-server")


@dataclass
class Pinned:
    """Threads moved to other cores, with the cores each had; ``refused``: how many could not be
    moved (another user's, without the right to)."""

    cores: frozenset[int]
    previous: dict[int, set[int]] = field(default_factory=dict)
    refused: int = 0

    def restore(self) -> None:
        for tid, cores in self.previous.items():
            with contextlib.suppress(OSError):  # gone since
                os.sched_setaffinity(tid, cores)
        self.previous.clear()


def pin(names: tuple[str, ...], cores: set[int]) -> Pinned:
    """Move every thread of the local processes named ``names`` to ``cores`` (those processes fork
    later keep them: a PostgreSQL backend is its postmaster's child)."""
    pinned = Pinned(frozenset(cores))
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in names:
                continue
            threads = [int(task.name) for task in (entry / "task").iterdir()]
        except OSError:  # gone meanwhile
            continue
        for tid in threads:
            try:
                previous = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cores)
            except PermissionError:
                pinned.refused += 1
            except OSError:
                continue
            else:
                pinned.previous[tid] = previous
    return pinned

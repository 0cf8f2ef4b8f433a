"""Argon2id's memory kept between password checks (idp.accounts.hash_memory): the same answers as
argon2-cffi's own verify, one check at a time in the block, and the block given back when idle."""

from __future__ import annotations

import bisect
import ctypes.util
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher as Argon2
from argon2 import Type

from idp.accounts import hash_memory
from idp.accounts.hash_memory import Arena
from idp.accounts.hashing import PasswordHasher

MEMORY = 1024


@pytest.fixture
def stored() -> str:
    return Argon2(time_cost=1, memory_cost=MEMORY, parallelism=1).hash("Correct-Horse-7!")


def test_a_hash_of_the_provider_is_checked_in_the_block(stored):
    arena = Arena(MEMORY)
    assert arena.matches(stored, b"Correct-Horse-7!") is True
    assert arena.matches(stored, b"Correct-Horse-8!") is False
    # Several lanes, more passes, less memory than the block: the same answers.
    other = Argon2(time_cost=3, memory_cost=MEMORY // 2, parallelism=2).hash("x")
    assert arena.matches(other, b"x") is True
    assert arena.matches(other, b"y") is False


@pytest.mark.parametrize("encoded", [
    Argon2(time_cost=1, memory_cost=MEMORY * 2, parallelism=1).hash("x"),  # more than the block
    Argon2(time_cost=1, memory_cost=MEMORY, parallelism=1, type=Type.I).hash("x"),  # argon2i
    "$argon2id$v=16$m=1024,t=1,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA",  # another version
    "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$not*base64",
    "$argon2id$v=19$m=1024,t=1,p=1$$YWJjZGVmZ2hpamtsbW5vcA",  # no salt
    "$argon2id$v=19$m=1024,t=1,p=1$c29tZQ$YWJjZGVmZ2hpamtsbW5vcA",  # a salt libargon2 refuses
    "$argon2id$v=19$m=1024,t=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA",
    "pbkdf2_sha256$1000$salt$digest",
    "",
], ids=["bigger", "argon2i", "v16", "bad-base64", "no-salt", "short-salt", "no-parallelism", "pbkdf2",
        "empty"])
def test_any_other_hash_is_left_to_argon2_cffi(encoded):
    assert Arena(MEMORY).matches(encoded, b"x") is None


def test_the_password_hasher_checks_its_own_hashes_in_its_block(monkeypatch):
    hasher = PasswordHasher(time_cost=1, memory_cost=MEMORY, parallelism=1)
    stored = hasher.hash("Correct-Horse-7!")
    computed = []
    real_compute = hash_memory._compute
    monkeypatch.setattr(hash_memory, "_compute", lambda *args: computed.append(1) or real_compute(*args))

    class WithoutVerify:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name == "verify":
                raise AssertionError("argon2-cffi's own verify was called")
            return getattr(self.inner, name)

    monkeypatch.setattr(hasher, "_argon2", WithoutVerify(hasher._argon2))
    assert hasher.verify(stored, "Correct-Horse-7!").ok
    assert not hasher.verify(stored, "wrong").ok
    assert not hasher.verify(None, "wrong").ok  # the dummy hash, in the block too
    assert len(computed) == 3


def test_a_check_in_the_block_keeps_the_interpreter_for_itself():
    # A thread that notes the time as often as it can: while a check computes, it must not run
    # (argon2-cffi's bindings would let it, interleaving its Python with the hash on one core:
    # its notes would then be a switch interval apart at most, 5 ms).
    stored = Argon2(time_cost=24, memory_cost=MEMORY * 8, parallelism=1).hash("x")
    arena = Arena(MEMORY * 8)
    arena.matches(stored, b"x")  # the block mapped
    noted: list[float] = []
    stop = threading.Event()

    def note() -> None:
        while not stop.is_set():
            noted.append(time.perf_counter())

    thread = threading.Thread(target=note)
    thread.start()
    try:
        while len(noted) < 1000:
            time.sleep(0.001)
        started, computing = time.perf_counter(), time.thread_time()
        assert arena.matches(stored, b"x") is True
        # The check's own CPU time: its wall time would also count the wait to take the
        # interpreter back afterwards, as long as a busy machine makes it.
        took = time.thread_time() - computing
        time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    # From the last note before the check, however long before it a busy machine paused the
    # thread: the gap that spans the check starts there.
    during = noted[bisect.bisect_left(noted, started) - 1:]
    longest = max(later - earlier for earlier, later in itertools.pairwise(during))
    assert took > 0.04
    # Not all of it: the block's release at the end calls back into Python, where the waiting
    # thread may take a switch interval.
    assert longest >= 0.5 * took


def test_without_the_library_s_own_function_a_check_in_the_block_still_answers(monkeypatch, stored):
    class Elsewhere:  # a library that has no argon2_ctx (the C library)
        __file__ = ctypes.util.find_library("c")

    monkeypatch.setattr(hash_memory, "bindings", Elsewhere)
    assert hash_memory._holding_the_interpreter() is None
    monkeypatch.setattr(hash_memory, "_compute", hash_memory.core)
    arena = Arena(MEMORY)
    assert arena.matches(stored, b"Correct-Horse-7!") is True
    assert arena.matches(stored, b"Correct-Horse-8!") is False


def test_checks_take_the_block_in_turn():
    arena = Arena(MEMORY)
    hashes = [Argon2(time_cost=2, memory_cost=MEMORY, parallelism=1).hash(f"password {n}") for n in range(8)]
    answers: dict[int, tuple[bool | None, bool | None]] = {}
    start = threading.Barrier(16)

    def check(n: int) -> None:
        start.wait()
        right = arena.matches(hashes[n % 8], f"password {n % 8}".encode())
        wrong = arena.matches(hashes[n % 8], f"password {(n + 1) % 8}".encode())
        answers[n] = (right, wrong)

    threads = [threading.Thread(target=check, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == dict.fromkeys(range(16), (True, False))


def test_a_check_that_waits_too_long_for_the_block_is_left_to_argon2_cffi(stored):
    arena = Arena(MEMORY, wait_seconds=0.05)
    arena._lent.acquire()  # another check holds it
    try:
        assert arena.matches(stored, b"Correct-Horse-7!") is None
    finally:
        arena._lent.release()
    hasher = PasswordHasher(time_cost=1, memory_cost=MEMORY, parallelism=1)
    hasher._arena = arena
    arena._lent.acquire()
    try:
        assert hasher.verify(stored, "Correct-Horse-7!").ok  # argon2-cffi's verify, all the same
        assert not hasher.verify(stored, "wrong").ok
    finally:
        arena._lent.release()


IDLE = f"""
import sys, time
sys.path.insert(0, {str(Path(hash_memory.__file__).parents[2])!r})
from argon2 import PasswordHasher
from idp.accounts.hash_memory import Arena
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
stored = PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1).hash("x")
arena = Arena(19456, idle_seconds=0.3)
before = rss()
for _ in range(3):
    assert arena.matches(stored, b"x")
held = rss()
time.sleep(1)
print(held - before, rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the RSS from /proc")
def test_the_block_is_kept_while_checks_come_and_given_back_when_idle():
    done = subprocess.run([sys.executable, "-c", IDLE],  # noqa: S603 - our own script
                          capture_output=True, text=True, check=True)
    held, after = map(int, done.stdout.split())
    assert held >= 18, f"the block was not kept between checks (RSS +{held} MiB)"
    assert after < 3, f"the block was kept while idle (RSS +{after} MiB)"



def test_the_hashers_of_a_process_share_its_block():
    first = PasswordHasher(time_cost=1, memory_cost=MEMORY, parallelism=1)
    second = PasswordHasher(time_cost=1, memory_cost=MEMORY, parallelism=1)
    assert first._arena is second._arena is hash_memory.arena_for(MEMORY)
    assert hash_memory.arena_for(MEMORY * 2) is not first._arena


FORK = f"""
import os, sys
sys.path.insert(0, {str(Path(hash_memory.__file__).parents[2])!r})
from argon2 import PasswordHasher
from idp.accounts.hash_memory import arena_for
stored = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
arena = arena_for(1024)
arena.wait_seconds = 0.05
assert arena.matches(stored, b"x")
arena._lent.acquire()  # lent, by a thread the child will not have
child = os.fork()
if child == 0:
    os._exit(0 if arena.matches(stored, b"x") is True and arena.matches(stored, b"y") is False else 1)
arena._lent.release()
print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
def test_a_forked_process_has_an_arena_of_its_own():
    done = subprocess.run([sys.executable, "-c", FORK],  # noqa: S603 - our own script
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0", done.stderr


def test_nothing_of_a_check_stays_in_the_block(stored):
    arena = Arena(MEMORY)
    assert arena.matches(stored, b"Correct-Horse-7!")
    assert arena._block is not None
    assert arena._block[:] == bytes(MEMORY * 1024)  # libargon2 clears it after each use


def test_without_cffi_callbacks_every_hash_is_left_to_argon2_cffi(stored, monkeypatch):
    real = hash_memory.ffi

    class Refusing:  # cffi on a system that refuses write+execute memory
        def __getattr__(self, name):
            return getattr(real, name)

        def callback(self, *_args):
            raise MemoryError("Cannot allocate write+execute memory for ffi.callback()")

    monkeypatch.setattr(hash_memory, "ffi", Refusing())
    arena = Arena(MEMORY)
    assert arena.matches(stored, b"Correct-Horse-7!") is None
    hasher = PasswordHasher(time_cost=1, memory_cost=MEMORY, parallelism=1)
    hasher._arena = arena
    assert hasher.verify(stored, "Correct-Horse-7!").ok
    assert not hasher.verify(stored, "wrong").ok


def _mapping(address: int) -> tuple[str, dict[str, int]]:
    """The permissions of this process's mapping that holds ``address``, and its sizes in kB
    (/proc/self/smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for number, line in enumerate(lines):
        fields = line.split()
        if "-" not in fields[0] or len(fields) < 5:
            continue
        start, end = (int(part, 16) for part in fields[0].split("-"))
        if start <= address < end:
            sizes = {}
            for detail in lines[number + 1:]:
                name, _, rest = detail.partition(":")
                if not rest.strip().endswith("kB"):
                    break
                sizes[name] = int(rest.split()[0])
            return fields[1], sizes
    raise LookupError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the mappings from /proc")
def test_the_block_is_private_memory_in_huge_pages_where_the_kernel_offers_them():
    # Four MiB: whatever its address, the block holds a whole aligned huge page (2 MiB).
    stored = Argon2(time_cost=1, memory_cost=4096, parallelism=1).hash("Correct-Horse-7!")
    arena = Arena(4096)
    assert arena.matches(stored, b"Correct-Horse-7!")
    permissions, sizes = _mapping(int(hash_memory.ffi.cast("uintptr_t", arena._address)))
    # A shared mapping's pages would stay the process's after MADV_DONTNEED.
    assert permissions.endswith("p"), permissions
    offered = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if offered.exists() and ("[always]" in offered.read_text() or "[madvise]" in offered.read_text()):
        assert sizes["AnonHugePages"] >= 2048, sizes

"""Argon2id's working memory, kept from one password check to the next.

Argon2id works in a block of memory of its whole cost (19 MiB at the configured m=19456), and
libargon2 asks malloc for it at each hash. A worker process returns such blocks to the kernel
as soon as they are freed (``idp.web.server.release_large_blocks``), so that the memory of a
sign-in is not kept for good; each check then has the kernel map and clear 19 MiB afresh (about
2 ms of kernel time a check, bench/RESULTS.md).

``Arena`` keeps one such block instead, in huge pages where the kernel offers them, and lends
it to one check at a time through argon2-cffi's low-level API (libargon2's allocation
callbacks). A check waits for the block while another has it: on one core two hashes at once
take as long as one after the other, and each would sweep its 19 MiB through the caches the
other uses. A check still waiting after ``wait_seconds`` takes memory of its own, as before.
libargon2 clears the block after each use. The block is given back to the kernel
(``MADV_DONTNEED``) once no check has used it for ``idle_seconds``: a worker holds it only
while sign-ins keep coming, and never more than one, where two checks at once used to hold two.

Only the provider's own hashes are checked here (argon2id, version 19, as argon2-cffi writes
them: ``$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>``, within the block's size); ``matches``
answers None for any other, which argon2-cffi's own ``verify`` then checks.

A check in the block keeps the interpreter's lock while libargon2 computes (``_compute``).
argon2-cffi's bindings release it, and a worker's other threads then run their Python on the same
core in the middle of the hash, each sweeping the other's working set out of the caches: about
2 ms more CPU a sign-in (bench/RESULTS.md). Holding it, the other threads' requests wait for the
hash to end, as they would for the core.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import hmac
import mmap
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import _argon2_cffi_bindings._ffi as bindings
from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError
from argon2.low_level import ARGON2_VERSION, core, ffi, lib

# libargon2's own codes (argon2.h): what the callbacks answer.
_ARGON2_OK = 0
_ARGON2_MEMORY_ALLOCATION_ERROR = -22
_PREFIX = "$argon2id$"
KIB = 1024


class Arena:
    """One block of argon2id memory of ``memory_cost`` KiB, lent to one check at a time.

    ``idle_seconds``: a quarter of a second by default. Checks that come less often than that
    (four a second a worker) map the block again each time, as they did without the arena, for
    less than 1 % of a core; checks that come more often keep it.
    """

    def __init__(self, memory_cost: int, *, idle_seconds: float = 0.25, wait_seconds: float = 1.0):
        self.size = memory_cost * KIB
        self.idle_seconds = idle_seconds
        self.wait_seconds = wait_seconds
        try:
            self._allocate = ffi.callback("allocate_fptr", self._lend)
            self._free = ffi.callback("deallocate_fptr", lambda _memory, _size: None)
        except MemoryError:  # a system that refuses cffi's callbacks (SELinux's deny_execmem)
            self._allocate = self._free = None
        self._start()

    def _start(self) -> None:
        self._lent = threading.Lock()
        self._block: mmap.mmap | None = None  # mapped at the first check
        self._address = ffi.NULL
        self._used = threading.Event()

    def matches(self, encoded: str, secret: bytes) -> bool | None:
        """Whether ``secret`` matches the argon2id hash ``encoded``, computed in the block;
        None when this hash is not one of the provider's own, or the block stayed lent for
        ``wait_seconds``.

        A check waits for the block rather than taking memory of its own: on a core, two
        hashes at once take as long as one after the other, and each sweeps 19 MiB through
        the caches the other needs.
        """
        decoded = _decode(encoded) if self._allocate is not None else None
        if decoded is None:
            return None
        version, memory_cost, time_cost, lanes, salt, expected = decoded
        if memory_cost * KIB > self.size or not self._lent.acquire(timeout=self.wait_seconds):
            return None
        try:
            if self._block is None:
                self._map()
            out = ffi.new("uint8_t[]", len(expected))
            password = ffi.new("uint8_t[]", secret)
            salt_buffer = ffi.new("uint8_t[]", salt)
            context = ffi.new("argon2_context *", {
                "out": out, "outlen": len(expected), "pwd": password, "pwdlen": len(secret),
                "salt": salt_buffer, "saltlen": len(salt), "secret": ffi.NULL, "secretlen": 0,
                "ad": ffi.NULL, "adlen": 0, "t_cost": time_cost, "m_cost": memory_cost, "lanes": lanes,
                "threads": lanes, "version": version, "allocate_cbk": self._allocate,
                "free_cbk": self._free, "flags": lib.ARGON2_DEFAULT_FLAGS,
            })
            if _compute(context, Type.ID.value) != _ARGON2_OK:
                return None
            return hmac.compare_digest(bytes(ffi.buffer(out, len(expected))), expected)
        finally:
            self._used.set()
            self._lent.release()

    def _map(self) -> None:
        # Private: the kernel backs a shared anonymous mapping (mmap's default) with shared
        # memory, which takes no huge pages unless configured apart, and whose pages
        # MADV_DONTNEED only unmaps (they stay the process's until it ends).
        self._block = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            self._block.madvise(mmap.MADV_HUGEPAGE)
        self._address = ffi.cast("uint8_t *", ffi.from_buffer(self._block))
        threading.Thread(target=self._trim, name="argon2-arena", daemon=True).start()

    def _lend(self, memory, size: int) -> int:
        if size > self.size:
            return _ARGON2_MEMORY_ALLOCATION_ERROR
        memory[0] = self._address
        return _ARGON2_OK

    def _trim(self) -> None:
        """Give the block's pages back once no check has used it for ``idle_seconds``."""
        while True:
            self._used.wait()
            self._used.clear()
            time.sleep(self.idle_seconds)
            if self._used.is_set() or not self._lent.acquire(blocking=False):
                continue
            try:
                if self._block is not None:
                    self._block.madvise(mmap.MADV_DONTNEED)
            finally:
                self._lent.release()


def _holding_the_interpreter() -> Callable[[Any, int], int] | None:
    """libargon2's ``argon2_ctx`` (what argon2-cffi's ``core`` calls), called through ``ctypes``'s
    ``PyDLL``, which keeps the interpreter's lock during the call; None where the bindings'
    library does not give it (``core`` is then used, which releases the lock)."""
    try:
        argon2_ctx = ctypes.PyDLL(bindings.__file__).argon2_ctx
    except (OSError, AttributeError):
        return None
    argon2_ctx.argtypes = (ctypes.c_void_p, ctypes.c_int)
    argon2_ctx.restype = ctypes.c_int

    def compute(context: Any, kind: int) -> int:
        return argon2_ctx(int(ffi.cast("uintptr_t", context)), kind)

    return compute


_compute: Callable[[Any, int], int] = _holding_the_interpreter() or core

_arenas: dict[int, Arena] = {}
_arenas_lock = threading.Lock()


def arena_for(memory_cost: int) -> Arena:
    """The process's arena for hashes of ``memory_cost`` KiB: the password hashers of a process
    (one per app) share it, so a worker holds one block whatever it built."""
    with _arenas_lock:
        if memory_cost not in _arenas:
            _arenas[memory_cost] = Arena(memory_cost)
        return _arenas[memory_cost]


def _start_afresh_after_fork() -> None:
    # A child process has neither the thread that gives a block back nor, perhaps, the thread
    # its block was lent to: its arenas start afresh (their blocks mapped again when used).
    global _arenas_lock
    _arenas_lock = threading.Lock()
    for arena in _arenas.values():
        arena._start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh_after_fork)


def _decode(encoded: str) -> tuple[int, int, int, int, bytes, bytes] | None:
    """(version, memory cost, passes, lanes, salt, hash) of an argon2id hash as argon2-cffi
    writes it; None for anything else."""
    if not encoded.startswith(_PREFIX):
        return None
    parts = encoded.split("$")
    if len(parts) != 6 or parts[2] != f"v={ARGON2_VERSION}":
        return None
    try:
        parameters = extract_parameters(encoded)
        salt, expected = _b64(parts[4]), _b64(parts[5])
    except (InvalidHashError, ValueError, binascii.Error):
        return None
    if parameters.type is not Type.ID or not salt or not expected:
        return None
    return (ARGON2_VERSION, parameters.memory_cost, parameters.time_cost, parameters.parallelism,
            salt, expected)


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)

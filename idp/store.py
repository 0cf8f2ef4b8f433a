"""Short-lived state with a time to live: sessions, interactions, counters.

``RedisStore`` is the production store, shared by every node. ``MemoryStore``
behaves the same inside one process; it exists so the demo runs without a
server and is not for several processes or nodes.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis


class StoreUnavailable(Exception):
    """The store cannot be reached; callers fail closed (HTTP 503)."""


class Store(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: int, *, only_if_absent: bool = False) -> bool: ...
    def delete(self, *keys: str) -> None:
        """Delete the keys, in one step."""
    def replace(self, old_key: str, key: str, value: str, ttl: int) -> None:
        """Set ``key`` and delete ``old_key`` in one atomic step (a value moving to a new key)."""
    def take(self, key: str) -> str | None:
        """Get and delete in one atomic step (single-use values)."""
    def incr(self, key: str, ttl: int) -> int:
        """Increment a counter; the time to live starts at the first increment."""
    def incr_each(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        """``incr`` for each (key, time to live), in one step; the counts, in their order."""
    def decr(self, key: str, *, delete: Sequence[str] = ()) -> None:
        """Decrement a counter that exists (its time to live unchanged); a missing one stays
        missing. ``delete``: keys deleted in the same step."""
    def ttl(self, key: str) -> int:
        """Seconds left, or 0 when the key does not exist."""
    def ping(self) -> None: ...


# Counters' increments and, at the first of each, its time to live: one command, atomic (a script
# runs whole), where MULTI/INCR/EXPIRE/EXEC is four for one counter.
_INCR_WITH_TTL = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[i], 'NX')
end
return counts
"""
# DECR on a missing key would make one without a time to live, kept for ever. The keys after
# the first are deleted.
_DECR_IF_EXISTS = """
if #KEYS > 1 then redis.call('DEL', unpack(KEYS, 2)) end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


# A value moving to a new key: the old one deleted and the new one set, atomically, in one
# command (MULTI/SET/DEL/EXEC is a transaction of four).
_REPLACE = """
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""


class _ThreadClients(threading.local):
    """Each thread's client of the store, and the process it was made in."""

    client: redis.Redis | None = None
    pid: int = 0


class RedisStore:
    def __init__(self, url: str, prefix: str = "idp:"):
        self.prefix = prefix
        self._pool = redis.ConnectionPool.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
            health_check_interval=30,
        )
        self._threads = _ThreadClients()
        # The connections are closed with the store, whichever thread's client holds them.
        self._closer = weakref.finalize(self, self._pool.disconnect)
        # Sent by their digest (EVALSHA) on the calling thread's client, loaded again by
        # redis-py if the server lost them.
        scripts = redis.Redis(connection_pool=self._pool)
        self._incr_with_ttl = scripts.register_script(_INCR_WITH_TTL)
        self._decr_if_exists = scripts.register_script(_DECR_IF_EXISTS)
        self._replace = scripts.register_script(_REPLACE)

    @property
    def client(self) -> redis.Redis:
        """This thread's client, which keeps one connection of the pool for its calls: a call
        then skips the pool's lock and its check of the connection (a third of a GET's CPU).
        Made again in a forked process, whose connections are its own. Connects on first use:
        raises ``redis.RedisError`` when the server cannot be reached."""
        own = self._threads
        if own.client is None or own.pid != os.getpid():
            own.client = redis.Redis(connection_pool=self._pool, single_connection_client=True)
            own.pid = os.getpid()
        return own.client

    def close(self) -> None:
        """Close the store's connections, those every thread's client holds included (done too
        when the store is garbage collected)."""
        self._closer()

    def _call(self, command: Callable[[redis.Redis], Any]) -> Any:
        """``command`` on this thread's client: the store's one way to the server, where its
        failures become ``StoreUnavailable``."""
        try:
            return command(self.client)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def get(self, key: str) -> str | None:
        return self._call(lambda client: client.get(self.prefix + key))

    def set(self, key: str, value: str, ttl: int, *, only_if_absent: bool = False) -> bool:
        return bool(self._call(
            lambda client: client.set(self.prefix + key, value, ex=ttl, nx=only_if_absent)))

    def delete(self, *keys: str) -> None:
        self._call(lambda client: client.delete(*(self.prefix + key for key in keys)))

    def replace(self, old_key: str, key: str, value: str, ttl: int) -> None:
        self._call(lambda client: self._replace(
            keys=[self.prefix + old_key, self.prefix + key], args=[value, ttl], client=client))

    def take(self, key: str) -> str | None:
        return self._call(lambda client: client.getdel(self.prefix + key))

    def incr(self, key: str, ttl: int) -> int:
        return self.incr_each([(key, ttl)])[0]

    def incr_each(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        keys = [self.prefix + key for key, _ttl in counters]
        ttls = [ttl for _key, ttl in counters]
        return [int(count) for count in self._call(
            lambda client: self._incr_with_ttl(keys=keys, args=ttls, client=client))]

    def decr(self, key: str, *, delete: Sequence[str] = ()) -> None:
        keys = [self.prefix + name for name in (key, *delete)]
        self._call(lambda client: self._decr_if_exists(keys=keys, client=client))

    def ttl(self, key: str) -> int:
        return max(0, int(self._call(lambda client: client.ttl(self.prefix + key))))

    def ping(self) -> None:
        self._call(lambda client: client.ping())


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[str, float] | None:
        item = self._data.get(key)
        if item and item[1] <= self.clock():
            del self._data[key]
            return None
        return item

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._live(key)
            return item[0] if item else None

    def set(self, key: str, value: str, ttl: int, *, only_if_absent: bool = False) -> bool:
        with self._lock:
            if only_if_absent and self._live(key):
                return False
            self._data[key] = (value, self.clock() + ttl)
            return True

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def replace(self, old_key: str, key: str, value: str, ttl: int) -> None:
        with self._lock:
            self._data.pop(old_key, None)
            self._data[key] = (value, self.clock() + ttl)

    def take(self, key: str) -> str | None:
        with self._lock:
            item = self._live(key)
            self._data.pop(key, None)
            return item[0] if item else None

    def incr(self, key: str, ttl: int) -> int:
        return self.incr_each([(key, ttl)])[0]

    def incr_each(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        counts = []
        with self._lock:
            for key, ttl in counters:
                item = self._live(key)
                value = int(item[0]) + 1 if item else 1
                expires = item[1] if item else self.clock() + ttl
                self._data[key] = (str(value), expires)
                counts.append(value)
        return counts

    def decr(self, key: str, *, delete: Sequence[str] = ()) -> None:
        with self._lock:
            for name in delete:
                self._data.pop(name, None)
            item = self._live(key)
            if item:
                self._data[key] = (str(int(item[0]) - 1), item[1])

    def ttl(self, key: str) -> int:
        with self._lock:
            item = self._live(key)
            return max(0, int(item[1] - self.clock() + 0.999)) if item else 0

    def ping(self) -> None:
        return None


def create_store(url: str) -> Store:
    return RedisStore(url) if url else MemoryStore()

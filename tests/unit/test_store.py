"""The Redis store and the in-process store behave the same."""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis

from idp.store import MemoryStore, RedisStore, StoreUnavailable
from tests.conftest import REDIS_URL


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    redis_store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    yield redis_store
    redis_store.client.flushdb()
    redis_store.close()


def test_set_get_delete(store):
    assert store.get("a") is None
    assert store.set("a", "1", 60)
    assert store.get("a") == "1"
    store.delete("a")
    assert store.get("a") is None


def test_delete_several_keys_at_once(store):
    for key in ("a", "b", "c"):
        store.set(key, "1", 60)
    store.delete("a", "b", "missing")
    assert (store.get("a"), store.get("b"), store.get("c")) == (None, None, "1")


def test_replace_moves_a_value_to_a_new_key(store):
    store.set("old", "v1", 60)
    store.replace("old", "new", "v2", 30)
    assert store.get("old") is None
    assert store.get("new") == "v2"
    assert 0 < store.ttl("new") <= 30


def test_set_only_if_absent(store):
    assert store.set("k", "first", 60, only_if_absent=True)
    assert not store.set("k", "second", 60, only_if_absent=True)
    assert store.get("k") == "first"


def test_take_is_single_use(store):
    store.set("once", "v", 60)
    assert store.take("once") == "v"
    assert store.take("once") is None


def test_incr_keeps_the_first_ttl(store):
    assert store.incr("c", 60) == 1
    assert store.incr("c", 3600) == 2
    assert 0 < store.ttl("c") <= 60
    assert store.ttl("missing") == 0


def test_incr_each_counts_several_counters_in_one_step_each_with_its_first_ttl(store):
    store.incr("a", 60)
    assert store.incr_each([("a", 3600), ("b", 30), ("a", 3600)]) == [2, 1, 3]
    assert 30 < store.ttl("a") <= 60 and 0 < store.ttl("b") <= 30
    assert store.incr_each([]) == []


def test_decr_counts_down_and_leaves_a_missing_counter_missing(store):
    store.incr("c", 60)
    store.incr("c", 60)
    store.decr("c")
    assert store.get("c") == "1"
    assert 0 < store.ttl("c") <= 60
    store.decr("missing")
    assert store.get("missing") is None


def test_decr_deletes_other_keys_in_the_same_step(store):
    store.incr("c", 60)
    store.incr("c", 60)
    store.set("a", "1", 60)
    store.incr("b", 60)
    store.decr("c", delete=["a", "b", "never set"])
    assert (store.get("c"), store.get("a"), store.get("b")) == ("1", None, None)
    store.set("a", "1", 60)
    store.decr("missing", delete=["a"])
    assert (store.get("missing"), store.get("a")) == (None, None)


def test_redis_counters_work_after_the_server_forgot_their_scripts():
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    store.incr("c", 60)
    store.client.script_flush()  # as after a restart of Redis or a failover
    assert store.incr("c", 60) == 2
    store.client.script_flush()
    store.decr("c")
    assert store.get("c") == "1"
    assert 0 < store.ttl("c") <= 60
    store.set("old", "v", 60)
    store.client.script_flush()
    store.replace("old", "new", "w", 60)
    assert (store.get("old"), store.get("new")) == (None, "w")


def test_each_thread_calls_redis_on_a_connection_of_its_own():
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    mine = store.client.client_id()
    store.set("a", "1", 60)
    assert store.client.client_id() == mine
    theirs = []
    other = threading.Thread(target=lambda: theirs.extend([store.get("a"), store.client.client_id()]))
    other.start()
    other.join()
    assert theirs[0] == "1"
    assert theirs[1] != mine


def test_a_store_closed_or_dropped_closes_the_connections_of_every_thread():
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    observer = redis.Redis.from_url(REDIS_URL)

    def connections(store: RedisStore) -> set[int]:
        ids = [store.client.client_id()]
        other = threading.Thread(target=lambda: ids.append(store.client.client_id()))
        other.start()
        other.join()
        assert len(set(ids)) == 2
        return set(ids)

    def still_open(ids: set[int]) -> set[int]:
        # The server forgets a closed connection when it reads its end: give it a moment.
        deadline = time.monotonic() + 5
        while (open_ := ids & {int(client["id"]) for client in observer.client_list()}) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        return open_

    closed = RedisStore(REDIS_URL)
    ids = connections(closed)
    closed.close()
    assert not still_open(ids)
    dropped = RedisStore(REDIS_URL)
    ids = connections(dropped)
    del dropped  # no close, no garbage collection: its last reference goes
    assert not still_open(ids)
    observer.close()


def test_a_forked_process_calls_redis_on_connections_of_its_own():
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    store.set("a", "1", 60)
    parents = store.client.client_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a worker forked from a process that used the store
        try:
            os.write(write, f"{store.get('a')} {store.client.client_id()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        value, childs = answer.read().split()
    os.waitpid(child, 0)
    assert value == "1"
    assert int(childs) != parents
    assert store.client.client_id() == parents


def test_memory_store_expires_values():
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.set("a", "1", 10)
    store.incr("n", 10)
    clock.now += 10
    assert store.get("a") is None
    assert store.incr("n", 10) == 1


def test_unreachable_redis_raises_store_unavailable():
    store = RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable):
        store.get("a")
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.incr("n", 60)
    with pytest.raises(StoreUnavailable):
        store.replace("a", "b", "1", 60)

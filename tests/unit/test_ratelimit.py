"""Named rate limits: test before, hit on failure, clear on success, on both stores."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path

import pytest

from idp import ratelimit
from idp.ratelimit import ALL_LIMITS, Limit, RateLimiter, TooManyAttempts
from idp.store import MemoryStore, RedisStore, StoreUnavailable
from tests.conftest import REDIS_URL

README = Path(__file__).resolve().parents[2] / "README.md"
SUBJECT = "malakoff:jean.dupont@example.fr"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """A store and a way to let time pass for it.

    The in-process store reads a fake clock, so time jumps; Redis keeps its own
    time, so the test waits for real (keep the windows of those tests short).
    """

    def __init__(self, store: MemoryStore | RedisStore, clock: Clock | None) -> None:
        self.store = store
        self.clock = clock

    def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            time.sleep(seconds)

    def keys(self) -> list[str]:
        if isinstance(self.store, MemoryStore):
            return list(self.store._data)
        return [key.removeprefix(self.store.prefix)
                for key in self.store.client.scan_iter(f"{self.store.prefix}*")]


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    if request.param == "memory":
        clock = Clock()
        yield Backend(MemoryStore(clock=clock), clock)
        return
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    yield Backend(store, None)
    store.client.flushdb()
    store.close()


@pytest.fixture
def memory():
    clock = Clock()
    return Backend(MemoryStore(clock=clock), clock)


THREE_PER_MINUTE = Limit("test:three", 3, 60)
FIVE_PER_FIFTEEN_MINUTES = Limit("test:five", 5, 15 * 60)
# Redis counts TTLs in whole seconds: the expiry tests wait this long for real.
TWO_PER_TWO_SECONDS = Limit("test:short", 2, 2)


def test_hit_counts_within_the_window(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)

    assert [limiter.hit(SUBJECT) for _ in range(4)] == [1, 2, 3, 4]


def test_test_passes_below_the_limit_and_raises_at_it(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)
    for _ in range(2):
        limiter.hit(SUBJECT)
    limiter.test(SUBJECT)  # 2 of 3: still allowed

    limiter.hit(SUBJECT)

    with pytest.raises(TooManyAttempts) as caught:
        limiter.test(SUBJECT)
    assert caught.value.limit == "test:three"
    # The window started at the first hit, a moment ago.
    assert caught.value.retry_after == 60
    assert str(caught.value) == "test:three: retry after 60s"


def test_test_counts_nothing(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)

    for _ in range(5):
        limiter.test(SUBJECT)

    assert limiter.remaining(SUBJECT) == 3
    assert limiter.hit(SUBJECT) == 1


def test_remaining(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)
    assert limiter.remaining(SUBJECT) == 3
    limiter.hit(SUBJECT)
    assert limiter.remaining(SUBJECT) == 2
    for _ in range(5):
        limiter.hit(SUBJECT)
    assert limiter.remaining(SUBJECT) == 0  # never negative


def test_clear_lifts_the_limit_at_once(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)
    for _ in range(3):
        limiter.hit(SUBJECT)

    limiter.clear(SUBJECT)

    limiter.test(SUBJECT)
    assert limiter.remaining(SUBJECT) == 3
    assert limiter.hit(SUBJECT) == 1
    limiter.clear("never hit")  # clearing nothing is no error


def test_several_counts_are_cleared_in_one_call_to_the_store(backend, monkeypatch):
    three = RateLimiter(backend.store, THREE_PER_MINUTE)
    backed_off = RateLimiter(backend.store, ratelimit.LOGIN_PER_IDENTIFIER)
    for _ in range(3):
        three.hit(SUBJECT)
        three.hit("another subject")
    for _ in range(ratelimit.LOGIN_PER_IDENTIFIER.limit + 1):
        backed_off.hit(SUBJECT)
    deletes: list[tuple[str, ...]] = []
    delete = backend.store.delete
    monkeypatch.setattr(backend.store, "delete", lambda *keys: deletes.append(keys) or delete(*keys))

    ratelimit.clear(backend.store, (three, SUBJECT), (backed_off, SUBJECT))

    assert len(deletes) == 1
    assert three.remaining(SUBJECT) == 3 and backed_off.remaining(SUBJECT) == backed_off.limit.limit
    backed_off.test(SUBJECT)  # its backoff forgotten too
    assert three.remaining("another subject") == 0  # only what was named


def test_a_refund_goes_with_the_counts_cleared_in_one_call_to_the_store(backend, monkeypatch):
    per_address = RateLimiter(backend.store, THREE_PER_MINUTE)
    backed_off = RateLimiter(backend.store, ratelimit.LOGIN_PER_IDENTIFIER)
    per_address.consume("an address")
    per_address.consume("an address")
    for _ in range(ratelimit.LOGIN_PER_IDENTIFIER.limit + 1):
        backed_off.hit(SUBJECT)
    calls: list[str] = []
    for name in ("decr", "delete"):
        monkeypatch.setattr(backend.store, name, _counted(calls, name, getattr(backend.store, name)))

    ratelimit.clear(backend.store, (backed_off, SUBJECT), refund=(per_address, "an address"))

    assert calls == ["decr"]
    assert per_address.remaining("an address") == 2  # one of its two given back
    assert backed_off.remaining(SUBJECT) == backed_off.limit.limit
    backed_off.test(SUBJECT)
    # Nothing counted, nothing to give back: the count is not made up.
    ratelimit.clear(backend.store, (backed_off, SUBJECT), refund=(per_address, "elsewhere"))
    assert per_address.remaining("elsewhere") == 3
    assert "elsewhere" not in " ".join(backend.keys())


def _counted(calls: list[str], name: str, method):
    def counted(*args, **kwargs):
        calls.append(name)
        return method(*args, **kwargs)

    return counted


def test_allow_counts_until_the_limit_then_refuses_without_counting(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)

    assert [limiter.allow(SUBJECT) for _ in range(5)] == [True, True, True, False, False]

    # The refusals were not counted: the next event is the fourth.
    assert limiter.hit(SUBJECT) == 4


def test_subjects_and_limits_are_counted_apart(backend):
    login = RateLimiter(backend.store, ratelimit.LOGIN_PER_IDENTIFIER)
    recovery = RateLimiter(backend.store, ratelimit.RECOVERY_PER_IDENTIFIER)
    for _ in range(5):
        login.hit(SUBJECT)

    with pytest.raises(TooManyAttempts):
        login.test(SUBJECT)
    login.test("malakoff:marie.martin@example.fr")
    recovery.test(SUBJECT)
    assert recovery.remaining(SUBJECT) == 3


def test_the_limit_lifts_when_the_window_ends(backend):
    limiter = RateLimiter(backend.store, TWO_PER_TWO_SECONDS)
    limiter.hit(SUBJECT)
    limiter.hit(SUBJECT)
    with pytest.raises(TooManyAttempts):
        limiter.test(SUBJECT)

    backend.advance(2.1)

    limiter.test(SUBJECT)
    assert limiter.remaining(SUBJECT) == 2
    assert limiter.hit(SUBJECT) == 1


def test_the_window_starts_at_the_first_event_and_later_events_do_not_extend_it(backend):
    limiter = RateLimiter(backend.store, TWO_PER_TWO_SECONDS)
    limiter.hit(SUBJECT)
    backend.advance(1.1)
    limiter.hit(SUBJECT)
    with pytest.raises(TooManyAttempts):
        limiter.test(SUBJECT)

    backend.advance(1.0)  # 2.1 s after the first event, 1 s after the second

    limiter.test(SUBJECT)
    assert limiter.hit(SUBJECT) == 1


def test_retry_after_is_what_is_left_of_the_window(memory):
    limiter = RateLimiter(memory.store, FIVE_PER_FIFTEEN_MINUTES)
    for attempt in range(5):
        memory.advance(60 if attempt else 0)  # the fifth wrong password comes 4 minutes after the first
        limiter.hit(SUBJECT)

    memory.advance(6 * 60 - 0.5)  # 9 min 59.5 s after the first

    with pytest.raises(TooManyAttempts) as caught:
        limiter.test(SUBJECT)
    # Rounded up: a member told to wait 5 min 0 s would be refused at 4 min 59.5 s.
    assert caught.value.retry_after == 301

    memory.advance(301)
    limiter.test(SUBJECT)


def test_retry_after_is_at_least_one_second():
    """When the counter expires between reading it and reading its TTL, still ask for a wait."""

    class ExpiringStore(MemoryStore):
        def ttl(self, key: str) -> int:
            return 0

    store = ExpiringStore()
    limiter = RateLimiter(store, THREE_PER_MINUTE)
    for _ in range(3):
        limiter.hit(SUBJECT)

    with pytest.raises(TooManyAttempts) as caught:
        limiter.test(SUBJECT)
    assert caught.value.retry_after == 1


def test_keys_hold_no_personal_data(backend):
    RateLimiter(backend.store, ratelimit.OTP_SEND_PER_PHONE).hit("+33612345678")
    RateLimiter(backend.store, ratelimit.LOGIN_PER_IDENTIFIER).hit(SUBJECT)

    keys = sorted(backend.keys())

    assert len(keys) == 2
    assert re.fullmatch(r"rl:login:identifier:[0-9a-f]{32}", keys[0])
    assert re.fullmatch(r"rl:otp-send:phone:[0-9a-f]{32}", keys[1])
    assert not any("33612345678" in key or "dupont" in key for key in keys)


@pytest.mark.parametrize("limit", ALL_LIMITS, ids=lambda limit: limit.name)
def test_each_named_limit_allows_its_number_then_waits_its_window(memory, limit):
    limiter = RateLimiter(memory.store, limit)

    for _ in range(limit.limit):
        limiter.test(SUBJECT)
        limiter.hit(SUBJECT)

    with pytest.raises(TooManyAttempts) as caught:
        limiter.test(SUBJECT)
    assert caught.value.limit == limit.name
    # A limit with a backoff slows down past its number instead (tested below).
    wait = limit.backoff or limit.window
    assert caught.value.retry_after == wait
    memory.advance(wait)
    limiter.test(SUBJECT)


def test_named_limits_are_the_documented_ones():
    """The README's "Rate limits" table states each limit's number and window."""
    units = {"min": 60, "hour": 3600, "hours": 3600}
    documented = {}
    section = README.read_text().split("### Rate limits", 1)[1].split("\n#", 1)[0]
    for name, allowed in re.findall(r"^\| `([a-z:-]+)` \| [^|]+ \| ([^|]+) \|$", section, flags=re.MULTILINE):
        number, count, unit = re.search(r"^(\d+) .*?/ (\d+ )?(min|hours?)\b", allowed).groups()
        documented[name] = (int(number), int(count or 1) * units[unit])

    assert documented == {limit.name: (limit.limit, limit.window) for limit in ALL_LIMITS}
    assert len({limit.name for limit in ALL_LIMITS}) == len(ALL_LIMITS)


def test_an_unreachable_store_fails_closed():
    limiter = RateLimiter(RedisStore("redis://127.0.0.1:1/0"), ratelimit.LOGIN_PER_IP)

    with pytest.raises(StoreUnavailable):
        limiter.test("192.0.2.1")
    with pytest.raises(StoreUnavailable):
        limiter.allow("192.0.2.1")


# Counting before the check: consume, refund, backoff, and parallel callers.

FIVE_THEN_SLOWER = Limit("test:backoff", 5, 24 * 3600, backoff=30, backoff_max=15 * 60)


def test_consume_counts_first_and_refuses_past_the_limit_without_counting(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)

    assert [limiter.consume(SUBJECT) for _ in range(3)] == [1, 2, 3]
    for _ in range(3):
        with pytest.raises(TooManyAttempts) as caught:
            limiter.consume(SUBJECT)
        assert caught.value.limit == "test:three" and 0 < caught.value.retry_after <= 60

    assert limiter.remaining(SUBJECT) == 0
    assert limiter.hit(SUBJECT) == 4  # the refusals were not counted


def test_several_limits_are_counted_in_one_call_to_the_store(backend, monkeypatch):
    three = RateLimiter(backend.store, THREE_PER_MINUTE)
    five = RateLimiter(backend.store, FIVE_PER_FIFTEEN_MINUTES)
    three.consume(SUBJECT)
    calls: list[str] = []
    for name in ("incr", "incr_each", "decr"):
        monkeypatch.setattr(backend.store, name, _counted(calls, name, getattr(backend.store, name)))

    assert ratelimit.consume_each((three, SUBJECT), (five, "an address")) == [2, 1]

    assert calls == ["incr_each"]
    assert three.remaining(SUBJECT) == 1 and five.remaining("an address") == 4


def test_a_limit_that_refuses_among_several_leaves_nothing_counted(backend):
    three = RateLimiter(backend.store, THREE_PER_MINUTE)
    five = RateLimiter(backend.store, FIVE_PER_FIFTEEN_MINUTES)
    for _ in range(3):
        three.consume(SUBJECT)
    five.consume("an address")

    for wanted in (((five, "an address"), (three, SUBJECT)), ((three, SUBJECT), (five, "an address"))):
        with pytest.raises(TooManyAttempts) as caught:
            ratelimit.consume_each(*wanted)
        assert caught.value.limit == "test:three"
        assert three.remaining(SUBJECT) == 0 and five.remaining("an address") == 4


def test_refund_gives_back_one_event_and_never_creates_a_counter(backend):
    limiter = RateLimiter(backend.store, THREE_PER_MINUTE)
    for _ in range(3):
        limiter.consume(SUBJECT)

    limiter.refund(SUBJECT)

    assert limiter.consume(SUBJECT) == 3
    limiter.refund("never counted")
    assert backend.keys() == [limiter._key(SUBJECT)]


def test_a_backoff_lets_one_event_through_per_doubling_wait(memory):
    limiter = RateLimiter(memory.store, FIVE_THEN_SLOWER)
    for _ in range(5):  # the fifth passes, and starts the first wait
        limiter.consume(SUBJECT)

    waits = []
    for _ in range(7):
        with pytest.raises(TooManyAttempts) as caught:
            limiter.consume(SUBJECT)
        waits.append(caught.value.retry_after)
        memory.advance(caught.value.retry_after - 1)
        with pytest.raises(TooManyAttempts):  # a second too early: refused, wait unchanged
            limiter.consume(SUBJECT)
        memory.advance(1)
        limiter.consume(SUBJECT)

    assert waits == [30, 60, 120, 240, 480, 900, 900]


def test_attempts_refused_during_a_wait_do_not_lengthen_it(memory):
    limiter = RateLimiter(memory.store, FIVE_THEN_SLOWER)
    for _ in range(5):
        limiter.consume(SUBJECT)
    for _ in range(20):
        memory.advance(1)
        with pytest.raises(TooManyAttempts):
            limiter.consume(SUBJECT)

    memory.advance(10)
    limiter.consume(SUBJECT)
    with pytest.raises(TooManyAttempts) as caught:
        limiter.consume(SUBJECT)
    assert caught.value.retry_after == 60


def test_test_and_hit_follow_the_backoff_too(backend):
    limiter = RateLimiter(backend.store, FIVE_THEN_SLOWER)
    for _ in range(4):
        limiter.hit(SUBJECT)
    limiter.test(SUBJECT)

    limiter.hit(SUBJECT)

    with pytest.raises(TooManyAttempts) as caught:
        limiter.test(SUBJECT)
    assert 0 < caught.value.retry_after <= 30


def test_clear_lifts_a_backoff_and_forgets_its_stage(memory):
    limiter = RateLimiter(memory.store, FIVE_THEN_SLOWER)
    for _ in range(5):
        limiter.consume(SUBJECT)
    memory.advance(30)
    limiter.consume(SUBJECT)  # the wait after this one would be a minute

    limiter.clear(SUBJECT)

    assert [limiter.consume(SUBJECT) for _ in range(5)] == [1, 2, 3, 4, 5]
    with pytest.raises(TooManyAttempts) as caught:
        limiter.consume(SUBJECT)
    assert caught.value.retry_after == 30
    assert memory.keys() == [limiter._key(SUBJECT), f"{limiter._key(SUBJECT)}:wait",
                             f"{limiter._key(SUBJECT)}:beyond"]


def test_the_sign_in_backoff_is_the_documented_one():
    limit = ratelimit.LOGIN_PER_IDENTIFIER
    assert (limit.limit, limit.window) == (5, 24 * 3600)
    assert [limit.delay(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 900, 900, 900]
    section = README.read_text().split("### Rate limits", 1)[1].split("\n## ", 1)[0]
    assert "a wait of 30 s before the next check, then 1 min, 2 min, 4 min, 8 min, and 15 min" in section


@pytest.mark.parametrize("limit", [THREE_PER_MINUTE, FIVE_THEN_SLOWER], ids=["flat", "backoff"])
def test_parallel_callers_never_pass_more_than_the_limit(limit):
    """Real threads on one Redis: no gap between counting and checking."""
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: parallel callers need a store shared between threads")
    store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    passed: list[int] = []
    start = threading.Barrier(20)

    def attempt() -> None:
        limiter = RateLimiter(store, limit)
        start.wait()
        with contextlib.suppress(TooManyAttempts):
            passed.append(limiter.consume(SUBJECT))

    try:
        threads = [threading.Thread(target=attempt) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(passed) == limit.limit
        assert RateLimiter(store, limit).remaining(SUBJECT) == 0
    finally:
        store.client.flushdb()
        store.close()

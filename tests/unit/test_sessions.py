"""Server-side sessions (idp.sessions) through a small Flask app of their own."""

from __future__ import annotations

import json
import time

import pytest
from flask import Blueprint, Flask, Response, jsonify, session

from idp.sessions import TOUCH_INTERVAL, StoreSessionInterface
from idp.store import MemoryStore, StoreUnavailable

IDLE = 15 * 60
ABSOLUTE = 8 * 3600
COOKIE = "idp-session"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    """The in-process store, counting reads and able to fail like an unreachable Redis."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.reads = 0
        self.writes = 0
        self.fail_reads = False
        self.fail_writes = False

    def get(self, key: str) -> str | None:
        self.reads += 1
        if self.fail_reads:
            raise StoreUnavailable("connection refused")
        return super().get(key)

    def set(self, key: str, value: str, ttl: int, *, only_if_absent: bool = False) -> bool:
        self.writes += 1
        if self.fail_writes:
            raise StoreUnavailable("connection refused")
        return super().set(key, value, ttl, only_if_absent=only_if_absent)

    def replace(self, old_key: str, key: str, value: str, ttl: int) -> None:
        self.writes += 1
        if self.fail_writes:
            raise StoreUnavailable("connection refused")
        super().replace(old_key, key, value, ttl)

    def delete(self, *keys: str) -> None:
        self.writes += 1
        super().delete(*keys)


def build_app(store: MemoryStore, *, secure: bool = False, on_unavailable=None) -> Flask:
    app = Flask(__name__)
    app.config["TESTING"] = True
    interface = StoreSessionInterface(
        store, idle=IDLE, absolute=ABSOLUTE, secure=secure, on_unavailable=on_unavailable,
        stateless_blueprints=frozenset({"api"}),
    )
    app.session_interface = interface

    @app.get("/put/<value>")
    def put(value):
        session["value"] = value
        return "stored"

    @app.get("/read")
    def read():
        return jsonify(data=dict(session), sid=session.sid, unavailable=session.unavailable)

    @app.get("/sign-in")
    def sign_in():
        session.regenerate()
        session["account"] = "acc-1"
        return "signed in"

    @app.get("/sign-out")
    def sign_out():
        session.end()
        return "signed out"

    @app.get("/expires-in")
    def expires_in():
        return str(interface.expires_in(session))

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.get("/ping")
    def ping():
        return jsonify(null=interface.is_null_session(session), data=dict(session))

    app.register_blueprint(api)
    return app


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    # The sessions read time.time for the absolute timeout; the store has its own clock.
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
def store(clock):
    return CountingStore(clock)


@pytest.fixture
def app(store):
    return build_app(store)


@pytest.fixture
def client(app):
    return app.test_client()


def sid_of(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def keep_alive(client, clock, until: float) -> None:
    """A request every 10 minutes up to ``until``, so the idle timeout never fires."""
    while clock.now + 600 <= until:
        clock.now += 600
        assert client.get("/read").json["data"] != {}


def record(store, sid: str) -> dict:
    raw = store.get(f"session:{sid}")
    assert raw is not None
    return json.loads(raw)


# -- storage and cookie ------------------------------------------------------------------------


def test_an_untouched_session_sets_no_cookie_and_stores_nothing(client, store):
    response = client.get("/read")

    assert response.json == {"data": {}, "sid": None, "unavailable": False}
    assert "Set-Cookie" not in response.headers
    assert store._data == {}


def test_data_lives_in_the_store_and_the_cookie_holds_only_a_random_id(client, store, clock):
    response = client.get("/put/secret-value")

    sid = sid_of(client)
    assert len(sid) == 43  # token_urlsafe(32)
    assert "secret-value" not in response.headers["Set-Cookie"]
    assert record(store, sid) == {"created": clock.now, "touched": clock.now,
                                  "data": {"value": "secret-value"}}
    assert store.ttl(f"session:{sid}") == IDLE
    assert client.get("/read").json == {"data": {"value": "secret-value"}, "sid": sid,
                                        "unavailable": False}


def test_cookie_flags_without_https(client):
    response = client.get("/put/x")

    sid = sid_of(client)
    assert response.headers.getlist("Set-Cookie") == [
        f"{COOKIE}={sid}; HttpOnly; Path=/; SameSite=Lax"
    ]
    assert response.headers["Vary"] == "Cookie"


def test_cookie_flags_over_https(store):
    client = build_app(store, secure=True).test_client()

    response = client.get("/put/x")

    (header,) = response.headers.getlist("Set-Cookie")
    name, _, rest = header.partition("=")
    sid = rest.split(";", 1)[0]
    # __Host-: Secure, Path=/ and no Domain, so no subdomain can plant or read it.
    assert name == "__Host-idp-session"
    assert header == f"__Host-idp-session={sid}; Secure; HttpOnly; Path=/; SameSite=Lax"
    assert store.get(f"session:{sid}") is not None


@pytest.mark.parametrize("cookie", ["unknown-id", "x" * 65])
def test_an_unknown_or_oversized_id_gets_a_fresh_session(client, store, cookie):
    client.set_cookie(COOKIE, cookie)

    response = client.get("/read")

    assert response.json == {"data": {}, "sid": None, "unavailable": False}
    assert store.reads == (1 if len(cookie) <= 64 else 0)


def test_a_read_within_the_touch_interval_writes_nothing(client, store, clock):
    client.get("/put/x")
    sid = sid_of(client)
    clock.now += TOUCH_INTERVAL - 1

    response = client.get("/read")

    assert "Set-Cookie" not in response.headers
    assert store.ttl(f"session:{sid}") == IDLE - (TOUCH_INTERVAL - 1)


def test_a_read_after_the_touch_interval_restarts_the_idle_timer(client, store, clock):
    client.get("/put/x")
    sid = sid_of(client)
    created = clock.now
    clock.now += TOUCH_INTERVAL

    response = client.get("/read")

    assert response.headers.getlist("Set-Cookie") == [f"{COOKIE}={sid}; HttpOnly; Path=/; SameSite=Lax"]
    assert store.ttl(f"session:{sid}") == IDLE
    assert record(store, sid) == {"created": created, "touched": clock.now, "data": {"value": "x"}}


# -- timeouts ----------------------------------------------------------------------------------


def test_idle_timeout_ends_the_session(client, store, clock):
    client.get("/put/x")
    sid = sid_of(client)
    clock.now += IDLE - 1
    assert client.get("/read").json["data"] == {"value": "x"}  # touched: the timer restarts
    clock.now += IDLE

    response = client.get("/read")

    assert response.json == {"data": {}, "sid": None, "unavailable": False}
    assert store.get(f"session:{sid}") is None


def test_absolute_timeout_ends_even_an_active_session(client, store, clock):
    client.get("/put/x")
    sid = sid_of(client)
    created = clock.now
    keep_alive(client, clock, until=created + ABSOLUTE - 1)
    clock.now = created + ABSOLUTE

    response = client.get("/read")

    assert response.json == {"data": {}, "sid": None, "unavailable": False}
    assert store._data.get(f"session:{sid}") is None  # deleted, not left to its TTL


def test_store_ttl_never_outlives_the_absolute_timeout(client, store, clock):
    client.get("/put/x")
    sid = sid_of(client)
    created = clock.now
    keep_alive(client, clock, until=created + ABSOLUTE - 100)
    clock.now = created + ABSOLUTE - 100

    client.get("/put/y")

    assert store.ttl(f"session:{sid}") == 100


def test_expires_in_is_the_nearer_of_the_two_timeouts(client, clock):
    assert client.get("/expires-in").text == str(IDLE)
    client.get("/put/x")
    created = clock.now
    clock.now += 30
    # Not written back within the touch interval: the idle timer runs from the last write.
    assert client.get("/expires-in").text == str(IDLE - 30)
    clock.now += TOUCH_INTERVAL
    assert client.get("/expires-in").text == str(IDLE)  # this response writes it back
    keep_alive(client, clock, until=created + ABSOLUTE - 600)
    clock.now = created + ABSOLUTE - 600
    client.get("/read")  # written back: idle timer restarted
    clock.now += 30
    # The absolute end (570 s away) comes before the idle one (870 s away).
    assert client.get("/expires-in").text == "570"


# -- session id renewal ------------------------------------------------------------------------


def test_sign_in_moves_the_data_to_a_new_id_and_drops_the_old_one(client, store, clock):
    client.get("/put/x")
    before = sid_of(client)
    created = clock.now
    clock.now += 120

    writes = store.writes
    client.get("/sign-in")

    after = sid_of(client)
    assert after != before
    assert store.writes == writes + 1  # the new record and the old one's end, in one step
    assert store.get(f"session:{before}") is None
    assert record(store, after) == {"created": created + 120, "touched": created + 120,
                                    "data": {"value": "x", "account": "acc-1"}}
    # The old id, replayed (fixation), opens an empty session.
    client.set_cookie(COOKIE, before)
    assert client.get("/read").json == {"data": {}, "sid": None, "unavailable": False}


def test_sign_in_restarts_the_absolute_clock(client, store, clock):
    client.get("/put/x")
    created = clock.now
    keep_alive(client, clock, until=created + ABSOLUTE - 10)
    client.get("/sign-in")
    clock.now = created + ABSOLUTE + 10  # past the first session's absolute end

    assert client.get("/read").json["data"] == {"value": "x", "account": "acc-1"}


def test_end_forgets_the_session_server_side(client, store):
    client.get("/sign-in")
    sid = sid_of(client)

    client.get("/sign-out")

    assert store.get(f"session:{sid}") is None
    # The browser may still send the old id: it opens an empty session.
    assert client.get("/read").json == {"data": {}, "sid": None, "unavailable": False}


# -- stateless blueprints ----------------------------------------------------------------------


def test_stateless_blueprints_get_no_session_even_with_a_cookie(client, store):
    client.get("/put/x")
    reads = store.reads

    response = client.get("/api/ping")

    assert response.json == {"null": True, "data": {}}
    assert "Set-Cookie" not in response.headers
    assert store.reads == reads  # the cookie was not even looked up


def test_an_unknown_url_with_a_cookie_still_opens_the_session(client, store):
    client.get("/put/x")
    reads = store.reads

    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert store.reads == reads + 1


# -- unavailable store -------------------------------------------------------------------------


def test_store_down_on_read_marks_the_session_and_never_writes_it(client, store):
    client.get("/put/x")
    sid = sid_of(client)
    store.fail_reads = True

    response = client.get("/put/y")

    assert response.status_code == 200  # the app decides what to do with .unavailable
    assert "Set-Cookie" not in response.headers
    store.fail_reads = False
    assert record(store, sid)["data"] == {"value": "x"}  # not overwritten with partial data


def test_store_down_on_read_is_visible_to_the_request(client, store):
    client.get("/put/x")
    store.fail_reads = True

    assert client.get("/read").json == {"data": {}, "sid": None, "unavailable": True}


def test_store_down_on_save_calls_on_unavailable(store):
    seen: list[Response] = []

    def unavailable(response: Response) -> None:
        seen.append(response)
        response.status_code = 503
        response.headers.pop("Set-Cookie", None)

    client = build_app(store, on_unavailable=unavailable).test_client()
    store.fail_writes = True

    response = client.get("/put/x")

    assert response.status_code == 503
    assert len(seen) == 1
    assert "Set-Cookie" not in response.headers


def test_store_down_on_save_without_a_handler_raises(client, store):
    store.fail_writes = True

    with pytest.raises(StoreUnavailable, match="connection refused"):
        client.get("/put/x")

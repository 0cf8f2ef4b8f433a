"""A database that stops answering (a frozen host, a broken network path) costs a request a few
seconds at most: pages and the token endpoint answer 503 with Retry-After, what needs no
database keeps answering, and everything works again once it answers (SPEC §11)."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from idp import create_app
from idp.db import Base
from tests.conftest import DATABASE_URL, _reset, serving
from tests.flows import Flow, csrf_token, query
from tests.servers import behind, node_environment, werkzeug_serving

pytestmark = [
    pytest.mark.skipif(not DATABASE_URL.startswith("postgresql"),
                       reason="the bounded waits are PostgreSQL's (set IDP_TEST_DATABASE_URL)"),
    # Answers timed against bounds a second or so above the provider's own.
    pytest.mark.alone,
]

# Every request touching the database answers within this, frozen or not.
BOUND = 3.0


@pytest.fixture
def frozen_app(settings, proxy):
    app = create_app({
        **settings, "database_url": behind(proxy, settings),
        "database_connect_timeout": 2, "database_statement_timeout": 1,
        "database_pool_timeout": 1, "client_cache_seconds": 0})
    app.config["TESTING"] = True
    yield app
    proxy.thaw()
    _reset(app)


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def assert_unavailable(answer, elapsed) -> None:
    assert answer.status_code == 503, answer.data[:300]
    assert int(answer.headers["Retry-After"]) > 0
    assert elapsed < BOUND, elapsed


def test_a_frozen_database_costs_a_few_seconds_and_nothing_else(frozen_app, proxy, rp, member):
    http = frozen_app.test_client()
    flow = Flow(http, "malakoff", rp, member)
    # Signed in, with an access token and a code to redeem, while the database answers.
    bearer = {"Authorization": f"Bearer {flow.tokens()['access_token']}"}
    code = query(flow.authorize(prompt="none").headers["Location"])["code"]
    page, interaction = flow.sign_in_page(flow.authorize(prompt="login"))

    proxy.freeze()
    assert_unavailable(*timed(flow.authorize))
    assert_unavailable(*timed(lambda: http.post("/malakoff/login", data={
        "interaction": interaction, "identifier": flow.identifier,
        "password": "Wrong-Password-1!", "csrf_token": csrf_token(page.data)})))
    token, elapsed = timed(lambda: flow.token(code))
    assert_unavailable(token, elapsed)
    assert token.json["error"] == "temporarily_unavailable"
    userinfo, elapsed = timed(lambda: http.get("/malakoff/userinfo", headers=bearer))
    assert_unavailable(userinfo, elapsed)
    assert userinfo.json["error"] == "temporarily_unavailable"
    for path in ("/malakoff/jwks", "/malakoff/.well-known/openid-configuration", "/healthz"):
        answer, elapsed = timed(lambda path=path: http.get(path))
        assert answer.status_code == 200, path
        assert elapsed < 0.5, path
    ready, elapsed = timed(lambda: http.get("/readyz"))
    assert ready.status_code == 503 and ready.json["checks"]["database"] == "unavailable"
    assert elapsed < 2

    proxy.thaw()
    # The code was not used up by the failed attempt.
    assert flow.token(code).status_code == 200
    assert http.get("/malakoff/userinfo", headers=bearer).status_code == 200
    assert http.get("/readyz").status_code == 200
    assert flow.authorize().status_code in (302, 303)


def test_more_requests_than_connections_all_answer_503_in_time(frozen_app, proxy, rp):
    """Past the pool's 20 connections, requests wait for one at most the pool timeout."""
    params = Flow(None, "malakoff", rp, None).params()
    with serving(frozen_app) as port:
        url = f"http://127.0.0.1:{port}/malakoff/authorize"

        def authorize():
            started = time.monotonic()
            answer = requests.get(url, params=params, allow_redirects=False, timeout=30)
            return answer.status_code, answer.headers.get("Retry-After"), time.monotonic() - started

        try:
            assert authorize()[0] == 200
            proxy.freeze()
            with ThreadPoolExecutor(max_workers=30) as pool:
                answers = list(pool.map(lambda _: authorize(), range(30)))
        finally:
            proxy.thaw()
    assert {(status, bool(retry_after)) for status, retry_after, _ in answers} == {(503, True)}
    # Pool wait, then a connection that never opens: each bounded.
    assert max(elapsed for *_, elapsed in answers) < 1 + 2 + 1.5


def snapshot(app) -> dict[str, list[str]]:
    """Every row of every table, read directly (not through the proxy)."""
    with app.extensions["idp"].database.engine.connect() as connection:
        return {table.name: sorted(map(repr, connection.execute(table.select())))
                for table in Base.metadata.sorted_tables}


@pytest.fixture
def late_app(settings, proxy):
    """Statements may wait longer than a request may last: the database answers again after
    the request's deadline."""
    app = create_app({
        **settings, "database_url": behind(proxy, settings), "database_statement_timeout": 5,
        "request_deadline_seconds": 1, "client_cache_seconds": 0})
    app.config["TESTING"] = True
    yield app
    proxy.thaw()
    _reset(app)


def test_a_request_past_its_deadline_commits_nothing(late_app, app, proxy, rp, member):
    """A refresh held up by a frozen database past its deadline is not carried out when the
    database answers again: its client has given up, and would retry with the same token."""
    refresh_token = Flow(app.test_client(), "malakoff", rp, member).tokens(
        scope="openid offline_access")["refresh_token"]
    flow = Flow(late_app.test_client(), "malakoff", rp, member)
    before = snapshot(app)

    proxy.freeze()
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(flow.refresh, refresh_token)
        time.sleep(1.5)  # past the request's deadline (1 s), within the statement's bound (6 s)
        proxy.thaw()
        answer = held.result(timeout=10)
    assert answer.status_code == 503, answer.json
    assert answer.json["error"] == "temporarily_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert snapshot(app) == before, "nothing written: no rotation, no revocation, no event"

    # The client's retry with the same refresh token works, once; the family is still valid.
    flow = Flow(app.test_client(), "malakoff", rp, member)
    again = flow.refresh(refresh_token)
    assert again.status_code == 200, again.json
    assert flow.refresh(again.json["refresh_token"]).status_code == 200
    assert flow.refresh(refresh_token).json["error"] == "invalid_grant"


def test_a_revocation_past_its_deadline_revokes_nothing(late_app, app, proxy, rp, member):
    """Revocation is answered before the application (idp.web.lane), where the deadline holds
    as it does in the view: held by a frozen database past it, it revokes nothing."""
    access_token = Flow(app.test_client(), "malakoff", rp, member).tokens()["access_token"]
    http = late_app.test_client()
    before = snapshot(app)

    proxy.freeze()
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(http.post, "/malakoff/revoke", data={"token": access_token},
                           auth=(rp.client_id, rp.secret))
        time.sleep(1.5)  # past the request's deadline (1 s), within the statement's bound (6 s)
        proxy.thaw()
        answer = held.result(timeout=10)
    assert answer.status_code == 503, answer.json
    assert int(answer.headers["Retry-After"]) > 0
    assert snapshot(app) == before, "nothing written: no revocation, no event"
    bearer = {"Authorization": f"Bearer {access_token}"}
    assert app.test_client().get("/malakoff/userinfo", headers=bearer).status_code == 200


def _refresh_held_by_a_freeze(app, proxy, url: str, rp, refresh_token: str, answered, *,
                              held_for: float) -> None:
    """A refresh whose client gives up after a second while the database is frozen, carried on
    by the server once the database answers again ``held_for`` seconds later: it changes
    nothing, answers 503 (``answered()`` gives its status once logged), and the client's retry
    with the same token works, once."""
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    auth = (rp.client_id, rp.secret)
    before = snapshot(app)
    proxy.freeze()
    with pytest.raises(requests.Timeout):
        requests.post(url, data=refresh, auth=auth, timeout=1)
    time.sleep(held_for - 1)
    proxy.thaw()
    deadline = time.monotonic() + 10
    while (status := answered()) is None:
        assert time.monotonic() < deadline, "the held request was not answered"
        time.sleep(0.1)
    assert snapshot(app) == before, "nothing written: no rotation, no revocation, no event"
    assert status == 503

    again = requests.post(url, data=refresh, auth=auth, timeout=10)
    assert again.status_code == 200, again.text
    assert requests.post(url, data=refresh, auth=auth, timeout=10).json()["error"] == "invalid_grant"


def test_a_request_whose_client_left_commits_nothing_under_werkzeug(
        app, settings, proxy, rp, member, caplog):
    """Werkzeug's server (the demo's) shows the application the client's connection: a refresh
    whose client left is not carried out, though its deadline alone would allow it."""
    refresh_token = Flow(app.test_client(), "malakoff", rp, member).tokens(
        scope="openid offline_access")["refresh_token"]
    late = create_app({**settings, "database_url": behind(proxy, settings),
                       "database_statement_timeout": 10, "request_deadline_seconds": 60,
                       "client_cache_seconds": 0})
    caplog.set_level(logging.INFO, "idp.request")
    with werkzeug_serving(late) as url:
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200

        def answered() -> int | None:
            return next((record.status for record in caplog.records
                         if record.name == "idp.request" and "/malakoff/token" in record.getMessage()),
                        None)

        _refresh_held_by_a_freeze(app, proxy, f"{url}/malakoff/token", rp,
                                  refresh_token, answered, held_for=2)


@pytest.mark.parametrize(("deadline", "held_for"), [
    # The request's deadline keeps a refresh held past it from being carried out.
    pytest.param(2, 3, id="past-its-deadline"),
    # The production server tells the application when a client closes its connection: a
    # refresh whose client left is not carried out, though its deadline alone would allow it.
    pytest.param(60, 2, id="whose-client-left"),
])
def test_under_the_production_server_a_request_too_late_commits_nothing(
        app, settings, proxy, rp, member, provider_nodes, deadline, held_for):
    refresh_token = Flow(app.test_client(), "malakoff", rp, member).tokens(
        scope="openid offline_access")["refresh_token"]
    node = provider_nodes(node_environment(
        settings, database_url=behind(proxy, settings), database_statement_timeout=10,
        request_deadline_seconds=deadline, client_cache_seconds=0, cookie_secure=False))
    assert requests.get(f"{node.url}/readyz", timeout=5).status_code == 200  # pool warmed up

    def answered() -> int | None:
        return next((record["status"] for line in node.log_lines()
                     if (record := json.loads(line))["logger"] == "idp.request"
                     and record["path"] == "/malakoff/token"), None)

    _refresh_held_by_a_freeze(app, proxy, f"{node.url}/malakoff/token", rp, refresh_token,
                              answered, held_for=held_for)


def test_under_the_production_server_a_frozen_database_is_answered_in_time_and_loses_nothing(
        app, settings, proxy, rp, member, provider_nodes):
    flow = Flow(app.test_client(), "malakoff", rp, member)
    refresh_token = flow.tokens(scope="openid offline_access")["refresh_token"]
    node = provider_nodes(node_environment(
        settings, database_url=behind(proxy, settings), database_connect_timeout=2,
        database_statement_timeout=1, database_pool_timeout=1, client_cache_seconds=0,
        cookie_secure=False), workers=2)
    auth = (rp.client_id, rp.secret)
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_token}

    def call(method: str, path: str, **options):
        started = time.monotonic()
        answer = requests.request(method, node.url + path, allow_redirects=False, timeout=10,
                                  **options)
        return answer, time.monotonic() - started

    assert call("GET", "/readyz")[0].status_code == 200
    needless = ("/malakoff/jwks", "/malakoff/.well-known/openid-configuration", "/healthz")
    for path in needless * 2:  # each worker's first answer loads the keys
        call("GET", path)
    before = snapshot(app)
    proxy.freeze()
    token, elapsed = call("POST", "/malakoff/token", data=refresh, auth=auth)
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert int(token.headers["Retry-After"]) > 0 and elapsed < BOUND, elapsed
    page, elapsed = call("GET", "/malakoff/authorize", params=flow.params())
    assert page.status_code == 503 and int(page.headers["Retry-After"]) > 0 and elapsed < BOUND
    ready, elapsed = call("GET", "/readyz")
    assert ready.status_code == 503 and elapsed < 2
    for path in needless:
        # Far below the statement's bound (1 s, then 1 s more): no wait on the database.
        answer, elapsed = call("GET", path)
        assert answer.status_code == 200 and elapsed < 0.8, (path, elapsed)
    proxy.thaw()
    assert snapshot(app) == before

    again, _ = call("POST", "/malakoff/token", data=refresh, auth=auth)
    assert again.status_code == 200, again.text

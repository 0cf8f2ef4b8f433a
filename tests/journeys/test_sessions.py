"""Server-side sessions: idle and absolute timeouts, server-side logout."""

from __future__ import annotations

import time

from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, query, statements_run


def _signed_in(client, make):
    flow = Flow(client, "malakoff", make.client(), make.account())
    flow.code()
    return flow


def test_idle_timeout_ends_the_session(client, make, app):
    flow = _signed_in(client, make)
    sid = client.get_cookie("__Host-idp-session").value
    store = app.extensions["idp"].store
    # The store's time to live is the idle timeout.
    assert 0 < store.ttl(f"session:{sid}") <= app.extensions["idp"].settings.session_idle_timeout
    store.delete(f"session:{sid}")  # what expiry does
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_absolute_timeout_ends_the_session_even_when_active(client, make, app, monkeypatch):
    flow = _signed_in(client, make)
    later = time.time() + app.extensions["idp"].settings.session_absolute_timeout + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_a_forged_session_id_is_ignored(client, make):
    flow = Flow(client, "malakoff", make.client(), make.account())
    client.set_cookie("__Host-idp-session", "forged-session-id", domain="localhost")
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_the_machine_endpoints_neither_read_nor_write_the_session(client, make, app, monkeypatch):
    flow = Flow(client, "malakoff", make.client(), make.account())
    tokens = flow.tokens(scope="openid profile offline_access")
    assert client.get_cookie("__Host-idp-session") is not None
    store = app.extensions["idp"].store
    touched = []
    for name in ("get", "set", "delete"):
        original = getattr(store, name)

        def spy(key, *args, _original=original, **kwargs):
            touched.append(key)
            return _original(key, *args, **kwargs)

        monkeypatch.setattr(store, name, spy)

    # The member's browser sends its session cookie along; these endpoints ignore it.
    answers = [
        flow.refresh(tokens["refresh_token"]),
        client.get("/malakoff/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}),
        client.post("/malakoff/introspect", data={"token": tokens["access_token"]},
                    auth=(flow.rp.client_id, flow.rp.secret)),
        client.get("/malakoff/jwks"),
        client.get("/malakoff/.well-known/openid-configuration?lang=en"),
    ]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert not any("Set-Cookie" in answer.headers for answer in answers)
    assert [key for key in touched if key.startswith("session:")] == []
    # The session itself is untouched and still signs the member in.
    assert "code" in query(flow.authorize(prompt="none").headers["Location"])


def test_the_page_of_a_parked_request_reads_the_session_and_writes_nothing(client, make, app, monkeypatch):
    # /authorize writes the session when it parks the request, the page's CSRF token with it;
    # the page at its own address (a reload of it) only reads it.
    flow = Flow(client, "malakoff", make.client(), make.account())
    _shown, interaction = flow.sign_in_page(flow.authorize(prompt="login"))
    store = app.extensions["idp"].store
    calls = []
    for name in ("get", "set", "replace", "delete"):
        original = getattr(store, name)

        def spy(key, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, key))
            return _original(key, *args, **kwargs)

        monkeypatch.setattr(store, name, spy)

    page = client.get("/malakoff/login", query_string={"interaction": interaction})
    assert page.status_code == 200
    assert [name for name, key in calls if key.startswith("session:")] == ["get"]
    assert "Set-Cookie" not in page.headers
    # The token the page shows is the session's: the password goes on to the next step.
    posted = client.post("/malakoff/login", data={
        "interaction": interaction, "identifier": flow.identifier,
        "password": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert posted.status_code == 303
    assert posted.headers["Location"].endswith("/malakoff/login/code")


def test_the_answer_that_signs_in_reads_the_account_once(client, make, app):
    # The code's page signs the member in and issues the code in the same answer: what the
    # sign-in just proved is not read back from the database.
    flow = Flow(client, "malakoff", make.client(), make.account())
    assert flow.give_password().headers["Location"].endswith("/malakoff/login/code")
    choose = client.get("/malakoff/login/code")
    sent = client.post("/malakoff/login/code",
                       data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    page = client.get(sent.headers["Location"])
    code = flow.last_code()
    with statements_run(app) as statements:
        done = client.post("/malakoff/login/code/verify",
                           data={"code": code, "csrf_token": csrf_token(page.data)})
    assert "code" in query(done.headers["Location"])
    assert len([s for s, _ in statements if s.startswith("SELECT") and "FROM accounts" in s]) == 1

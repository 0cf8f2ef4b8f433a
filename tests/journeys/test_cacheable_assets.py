"""Static files and the tenants' brand.css (public, cacheable by shared caches) never carry
the session cookie, even when the member's session is due to be written back."""

from __future__ import annotations

import pytest

from tests.flows import Flow

COOKIE = "__Host-idp-session"


@pytest.fixture
def signed_in(client, make, monkeypatch):
    flow = Flow(client, "malakoff", make.client(), make.account())
    flow.tokens()
    assert client.get_cookie(COOKIE) is not None
    # Every request is then one that writes the session back (its idle timer restarts).
    monkeypatch.setattr("idp.sessions.TOUCH_INTERVAL", 0)
    return flow


def test_a_page_writes_the_session_back(signed_in, client):
    """The control: with the same session, a member's page does set the cookie again."""
    page = client.get("/malakoff/login")
    assert COOKIE in page.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("path", ["/static/idp.css", "/static/deadline.js",
                                  "/static/no-such-file.js", "/malakoff/brand.css",
                                  "/miel/brand.css"])
def test_public_assets_never_set_the_session_cookie(signed_in, client, path):
    with client.get(path) as answer:  # a static file's response holds the file open
        assert answer.status_code in (200, 404)
        assert "Set-Cookie" not in answer.headers, answer.headers


def test_brand_css_stays_public_and_cacheable(signed_in, client):
    answer = client.get("/malakoff/brand.css")
    assert answer.status_code == 200
    assert answer.cache_control.public and answer.cache_control.max_age == 3600
    assert "Set-Cookie" not in answer.headers
    # The session survives untouched: the member is still signed in.
    assert client.get_cookie(COOKIE) is not None


def test_static_files_do_not_read_the_session(signed_in, client, app, monkeypatch):
    store = app.extensions["idp"].store
    read = []
    original = store.get

    def spy(key, *args, **kwargs):
        read.append(key)
        return original(key, *args, **kwargs)

    monkeypatch.setattr(store, "get", spy)
    with client.get("/static/idp.css") as answer:
        assert answer.status_code == 200
    assert [key for key in read if key.startswith("session:")] == []

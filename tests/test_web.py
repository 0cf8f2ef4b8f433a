"""Security headers, error pages, health checks and the outbox page."""

from __future__ import annotations

import pytest

from idp import create_app
from idp.channels.models import Message
from idp.store import StoreUnavailable


def test_pages_carry_the_security_headers(client):
    response = client.get("/malakoff/login")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_session_cookie_is_host_prefixed_secure_httponly_lax(client):
    client.get("/malakoff/login")
    cookie = client.get_cookie("__Host-idp-session")
    assert cookie is not None
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax" and cookie.path == "/"


def test_not_found_is_a_page_and_json_for_the_api(client):
    page = client.get("/malakoff/nothing-here")
    assert page.status_code == 404 and b"<h1>" in page.data
    api = client.post("/acme/token")
    assert api.status_code == 404


def test_an_unexpected_error_shows_no_trace(app, client):
    @app.get("/_boom")
    def boom():
        raise RuntimeError("secret detail")

    response = client.get("/_boom")
    assert response.status_code == 500
    assert b"secret detail" not in response.data and b"Traceback" not in response.data


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "store": "ok"}


def test_readiness_reports_an_unreachable_store(app, client, monkeypatch):
    def down():
        raise StoreUnavailable("down")

    monkeypatch.setattr(app.extensions["idp"].store, "ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["store"] == "unavailable"


def test_store_outage_during_sign_in_is_a_503_page(app, client, monkeypatch):
    def down(*_args, **_kwargs):
        raise StoreUnavailable("down")

    monkeypatch.setattr(app.extensions["idp"].store, "get", down)
    client.set_cookie("__Host-idp-session", "x" * 20, domain="localhost")
    response = client.get("/malakoff/login")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "momentanément indisponible".encode() in response.data


def test_outbox_page_lists_messages(app, client, db):
    db.add(Message(tenant="malakoff", channel="email", template="test", recipient="a@example.org",
                   subject="Bonjour", body_text="Votre code : 123456"))
    db.commit()
    page = client.get("/_outbox")
    assert page.status_code == 200 and b"a@example.org" in page.data


def test_outbox_page_is_off_unless_enabled(settings):
    app = create_app({**settings, "outbox_page": False})
    assert app.test_client().get("/_outbox").status_code == 404


@pytest.mark.parametrize("path", ["/malakoff/login", "/miel/login", "/malakoff/logout/done"])
def test_pages_have_one_h1_and_a_language(client, path):
    html = client.get(path).data.decode()
    assert html.count("<h1") == 1
    assert '<html lang="fr">' in html


def test_english_is_available(client):
    html = client.get("/malakoff/login?lang=en").data.decode()
    assert '<html lang="en">' in html and "Sign in to your Espace Client" in html
    # The choice sticks for the session.
    assert "Sign in" in client.get("/malakoff/login").data.decode()


def test_store_outage_when_saving_the_session_is_a_503_page(app, client, monkeypatch):
    def down(*_args, **_kwargs):
        raise StoreUnavailable("down")

    monkeypatch.setattr(app.extensions["idp"].store, "set", down)
    response = client.get("/malakoff/login")
    assert response.status_code == 503
    assert "momentanément indisponible".encode() in response.data
    assert "Set-Cookie" not in response.headers

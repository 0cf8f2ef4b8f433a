"""Security headers, error pages, health checks and the outbox page."""

from __future__ import annotations

import json

import pytest
from werkzeug.routing import MapAdapter

from idp import create_app
from idp.channels.models import Message
from idp.pages import AXE_CORE_VERSION
from idp.store import StoreUnavailable
from tests.conftest import ROOT
from tests.flows import csrf_token


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


def test_a_request_with_a_session_matches_its_url_once(client, monkeypatch):
    client.get("/malakoff/login?lang=en")  # a session, whose cookie the next request sends
    assert client.get_cookie("__Host-idp-session") is not None
    matched = []
    match = MapAdapter.match

    def counted(adapter, *args, **kwargs):
        matched.append(adapter.path_info)
        return match(adapter, *args, **kwargs)

    monkeypatch.setattr(MapAdapter, "match", counted)
    page = client.get("/malakoff/login")
    assert page.status_code == 200 and "Sign in" in page.data.decode()  # the session was read
    assert matched == ["/malakoff/login"]
    assert client.get("/malakoff/nowhere").status_code == 404


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


def test_outbox_page_links_the_links_of_each_message(client, db):
    link = "http://localhost:5000/malakoff/activate/" + "A" * 150
    db.add(Message(tenant="malakoff", channel="email", template="activation", recipient="a@example.org",
                   subject="Activez votre compte", body_text=f"Pour activer votre compte\u00a0:\n{link}\n"))
    db.commit()
    html = client.get("/_outbox").data.decode()
    assert f'<a href="{link}"' in html and f">{link}</a>" in html


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


@pytest.mark.parametrize(("accept", "lang"), [
    ("en-GB,en;q=0.9", "en"), ("fr-FR,fr;q=0.9,en;q=0.5", "fr"), ("de-DE,en;q=0.3", "en"), ("de-DE", "fr"),
])
def test_the_browser_language_chooses_the_pages_language(client, accept, lang):
    html = client.get("/miel/login", headers={"Accept-Language": accept}).data.decode()
    assert f'<html lang="{lang}">' in html


def test_an_explicit_choice_wins_over_the_browser_language(client):
    english = {"Accept-Language": "en"}
    assert '<html lang="fr">' in client.get("/malakoff/login?lang=fr", headers=english).data.decode()
    assert '<html lang="fr">' in client.get("/malakoff/login", headers=english).data.decode()


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_every_page_links_the_tenants_accessibility_statement(client, app, tenant):
    login = client.get(f"/{tenant}/login").data.decode()
    assert f'<a href="/{tenant}/accessibilite">Accessibilité\u00a0: partiellement conforme</a>' in login
    statement = client.get(f"/{tenant}/accessibilite")
    html = statement.data.decode()
    contact = app.extensions["idp"].tenants[tenant].accessibility
    assert statement.status_code == 200 and html.count("<h1") == 1
    assert "<strong>partiellement conformes</strong>" in html
    assert f'href="mailto:{contact.email}"' in html and "Défenseur des droits" in html
    # The recourse RGAA requires: the Défenseur des droits online and by post.
    assert '<a href="https://formulaire.defenseurdesdroits.fr/">' in html
    assert "Défenseur des droits, Libre réponse 71120, 75342 Paris CEDEX 07" in html
    english = client.get(f"/{tenant}/accessibilite?lang=en").data.decode()
    assert "Accessibility statement" in english and "<strong>partially compliant</strong>" in english


def test_the_statement_names_the_axe_core_version_the_browser_tests_pin(client):
    package = json.loads((ROOT / "tests" / "browser" / "axe" / "package.json").read_text())
    assert package["dependencies"]["axe-core"] == AXE_CORE_VERSION
    assert f"axe-core {AXE_CORE_VERSION}" in client.get("/malakoff/accessibilite").data.decode()


def test_pages_outside_a_tenant_link_every_statement(client):
    html = client.get("/_outbox").data.decode()
    assert 'href="/malakoff/accessibilite"' in html and 'href="/miel/accessibilite"' in html


def test_a_failed_submit_puts_a_focused_error_summary_first(client):
    page = client.get("/malakoff/forgot-password")
    response = client.post("/malakoff/forgot-password",
                           data={"identifier": "", "csrf_token": csrf_token(page.data)})
    html = response.data.decode()
    assert "<title>Erreur\u00a0: Mot de passe oublié" in html
    main = html[html.index('<main id="main"'):]
    summary = 'class="alert alert-error error-summary" role="alert" tabindex="-1" autofocus'
    assert main.index(summary) < main.index("<h1>")
    assert '<a href="#identifier">Saisissez votre identifiant.</a>' in html
    assert 'aria-describedby="identifier-error"' in html and 'aria-invalid="true"' in html

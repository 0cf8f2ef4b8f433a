"""The inactivity limit of pages with a form (WCAG 2.2.1): their token lives in the browser's
session, which ends after the idle timeout; the page says so, and "J’ai besoin de plus de temps"
asks /session/extend to keep the session."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.flows import Flow, csrf_token

JSON = {"Accept": "application/json"}


@pytest.fixture
def idle() -> int:
    return 30 * 60


@pytest.fixture
def settings(settings, idle):
    return {**settings, "session_idle_timeout": idle}


def _notices(html: str) -> list[dict[str, str]]:
    """The class and data-deadline-* attributes of every time-limit notice of a page."""
    found = []
    for attributes in re.findall(r'<div class="(deadline[^"]*)"([^>]*)>', html):
        found.append({"class": attributes[0], **dict(re.findall(r'data-(deadline[\w-]*)="([^"]*)"',
                                                            attributes[1]))})
    return found


def _session_key(client) -> str:
    return f"session:{client.get_cookie('__Host-idp-session').value}"


def _extend(client, page, tenant: str = "malakoff"):
    return client.post(f"/{tenant}/session/extend", data={"csrf_token": csrf_token(page.data)},
                       headers=JSON)


@pytest.mark.parametrize("path", ["/malakoff/register", "/miel/register", "/malakoff/forgot-password",
                                  "/miel/forgot-identifier", "/malakoff/login"])
def test_a_page_with_a_form_states_its_inactivity_limit_and_warns_two_minutes_before(client, path):
    html = client.get(path).data.decode()
    assert "Pour votre sécurité, cette page expire après 30\u00a0minutes sans activité." in html
    [notice] = _notices(html)
    assert notice["class"] == "deadline deadline-session"
    assert 1790 <= int(notice["deadline"]) <= 1800 and notice["deadline-warn"] == "120"
    assert notice["deadline-warning"] == ("Cette page expire dans moins de 2\u00a0minutes faute d’activité. "
                                          "Avez-vous besoin de plus de temps\u00a0?")
    tenant = path.split("/")[1]
    assert f'data-deadline-extend="/{tenant}/session/extend"' in html
    assert f'href="{path}">Charger la page de nouveau</a>' in html
    assert html.count('src="/static/deadline.js"') == 1


def test_a_page_without_a_form_has_no_limit(client):
    html = client.get("/malakoff/accessibilite").data.decode()
    assert "data-deadline" not in html and "deadline.js" not in html


def test_a_sign_in_page_states_the_sign_in_limit_only(flow):
    html = flow.authorize(prompt="login").data.decode()
    [notice] = _notices(html)
    assert notice["class"] == "deadline" and "sans activité" not in html
    assert html.count('src="/static/deadline.js"') == 1


def test_the_limit_counts_from_the_sessions_last_write(client, app):
    client.get("/malakoff/register")
    store = app.extensions["idp"].store
    # A session written 50 seconds ago is not written again by the next page (it saves a write),
    # so that page's limit ends 50 seconds earlier than a full idle timeout.
    key = _session_key(client)
    record = json.loads(store.get(key))
    record["touched"] -= 50
    store.set(key, json.dumps(record), 1750)
    [notice] = _notices(client.get("/malakoff/register").data.decode())
    assert 1745 <= int(notice["deadline"]) <= 1750


def test_more_time_writes_the_session_back_with_its_whole_idle_timeout(client, app):
    page = client.get("/malakoff/register")
    store = app.extensions["idp"].store
    key = _session_key(client)
    store.set(key, store.get(key), 30)  # as if the member had been away 29 and a half minutes
    response = _extend(client, page)
    assert response.status_code == 200, response.data
    answer = json.loads(response.data)
    assert 1790 <= answer["expires_in"] <= 1800
    assert answer["message"] == ("C’est fait\u00a0: vous avez plus de temps. Pour votre sécurité, "
                                 "cette page expire après 30\u00a0minutes sans activité.")
    assert store.ttl(key) > 1790
    # The form of the page opened before still goes through.
    assert client.post("/malakoff/forgot-password",
                       data={"identifier": "someone@example.org", "csrf_token": csrf_token(page.data)},
                       ).status_code in (200, 303)


def test_more_time_is_bounded_by_the_absolute_timeout(client, app, monkeypatch):
    page = client.get("/malakoff/register")
    absolute = app.extensions["idp"].settings.session_absolute_timeout
    later = time.time() + absolute - 600
    monkeypatch.setattr(time, "time", lambda: later)
    answer = json.loads(_extend(client, page).data)
    assert 595 <= answer["expires_in"] <= 600


def test_an_ended_session_cannot_be_extended(client, app):
    page = client.get("/malakoff/register")
    app.extensions["idp"].store.delete(_session_key(client))
    response = _extend(client, page)
    assert response.status_code == 400
    assert json.loads(response.data) == {
        "error": "expired", "error_description": "Votre session a expiré. Veuillez recommencer."}
    # Nothing was kept alive: the form of that page is refused too.
    refused = client.post("/malakoff/forgot-password",
                          data={"identifier": "someone@example.org", "csrf_token": csrf_token(page.data)})
    assert refused.status_code == 400
    assert "Votre session a expiré" in refused.data.decode()


def test_more_time_needs_the_pages_token(client):
    client.get("/malakoff/register")
    response = client.post("/malakoff/session/extend", data={"csrf_token": "forged"}, headers=JSON)
    assert response.status_code == 400
    assert json.loads(response.data)["error"] == "invalid_request"


def test_the_account_page_of_a_signed_in_member_warns_too(client, make):
    flow = Flow(client, "malakoff", make.client(), make.account())
    flow.code()
    html = client.get("/malakoff/account").data.decode()
    [notice] = _notices(html)
    assert notice["class"] == "deadline deadline-session"


@pytest.mark.parametrize("lang", ["en"])
def test_the_limit_is_said_in_english_too(client, lang):
    html = client.get(f"/malakoff/register?lang={lang}").data.decode()
    assert "For your security, this page expires after 30 minutes without activity." in html
    assert "This page expires in less than 2 minutes without activity. Do you need more time?" in html
    assert "Load the page again" in html


@pytest.mark.parametrize(("idle", "said"), [(60, "après 1\u00a0minute sans activité"),
                                            (45 * 60, "après 45\u00a0minutes sans activité")])
def test_the_limit_said_follows_the_setting(client, idle, said):
    html = client.get("/malakoff/register").data.decode()
    assert said in html
    [notice] = _notices(html)
    assert idle - 10 <= int(notice["deadline"]) <= idle
    # A short limit is warned within its second half, never under 20 seconds before its end.
    assert notice["deadline-warn"] == ("30" if idle == 60 else "120")


def test_the_statement_describes_the_inactivity_limit_and_its_warning(client):
    html = client.get("/malakoff/accessibilite").data.decode()
    assert ("expire après 30\u00a0minutes sans activité, pour votre sécurité, et l’indique en bas de "
            "page") in html
    assert "autant de fois que nécessaire pendant 12\u00a0heures" in html
    assert "De même sur le formulaire d’inscription" in html

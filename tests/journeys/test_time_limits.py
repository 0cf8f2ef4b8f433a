"""Time limits the member can see and extend (WCAG 2.2.1): the pages say them in words, and
"J’ai besoin de plus de temps" asks /login/extend to give the sign-in its whole time again."""

from __future__ import annotations

import json
import re
import time

import pytest

from idp import ratelimit
from idp.signin.state import PENDING_TTL
from tests.factories import PASSWORD
from tests.flows import csrf_token, query

JSON = {"Accept": "application/json"}


def _login_page(flow):
    """Authorize; the sign-in page and its interaction id."""
    return flow.sign_in_page(flow.authorize(prompt="login"))


def _extend(flow, page, interaction: str | None = None, tenant: str | None = None):
    data = {"csrf_token": csrf_token(page.data)}
    if interaction:
        data["interaction"] = interaction
    return flow.http.post(f"/{tenant or flow.tenant}/login/extend", data=data, headers=JSON)


def _notice(html: str) -> dict[str, str]:
    """The data-deadline-* attributes of the first time-limit notice."""
    found = re.search(r'<div class="deadline"([^>]*)>', html)
    assert found, html
    return dict(re.findall(r'data-(deadline[\w-]*)="([^"]*)"', found[1]))


def test_the_sign_in_page_says_its_limit_in_words_and_warns_two_minutes_before(flow):
    page, _interaction = _login_page(flow)
    html = page.data.decode()
    assert "Pour votre sécurité, il vous reste 30\u00a0minutes pour terminer votre connexion." in html
    notice = _notice(html)
    assert 1790 <= int(notice["deadline"]) <= 1800 and notice["deadline-warn"] == "120"
    assert "Avez-vous besoin de plus de temps\u00a0?" in notice["deadline-warning"]
    assert 'src="/static/deadline.js"' in html
    assert "J’ai besoin de plus de temps" in html and "Recommencer la connexion" in html
    # Without an authorization request in progress only the session's inactivity limit remains
    # (tests/journeys/test_session_time.py).
    assert "il vous reste" not in flow.http.get("/malakoff/login").data.decode()


def test_the_code_page_states_one_limit_the_code_s(flow):
    flow.give_password()
    choose = flow.http.get("/malakoff/login/code")
    assert "il vous reste 15\u00a0minutes pour terminer votre connexion." in choose.data.decode()
    flow.http.post("/malakoff/login/code", data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    html = flow.http.get("/malakoff/login/code/verify").data.decode()
    assert "Il est valable 3\u00a0minutes." in html
    # One limit, and the words say which: the code's, which ends first (not the sign-in's 15 minutes).
    notices = re.findall(r'<div class="deadline[^"]*"([^>]*)>', html)
    assert len(notices) == 1, notices
    assert "il vous reste" not in html and "Votre code expire" in html
    attributes = dict(re.findall(r'data-(deadline[\w-]*)="([^"]*)"', notices[0]))
    assert 175 <= int(attributes["deadline"]) <= 180 and attributes["deadline-warn"] == "60"
    assert "Recevoir un nouveau code" in html


def test_more_time_gives_the_request_its_whole_lifetime_again(flow, app, monkeypatch):
    page, interaction = _login_page(flow)
    lifetime = app.extensions["idp"].settings.interaction_ttl
    started = time.time()
    # As if the member had spent most of the time already.
    monkeypatch.setattr(time, "time", lambda: started + lifetime - 2)
    response = _extend(flow, page, interaction)
    assert response.status_code == 200, response.data
    assert 1790 <= response.json["expires_in"] <= 1800
    assert response.json["message"] == ("C’est fait\u00a0: vous avez plus de temps. Pour votre sécurité, "
                                        "il vous reste 30\u00a0minutes pour terminer votre connexion.")
    again = flow.http.get(f"/malakoff/login?interaction={interaction}")
    assert "il vous reste 30\u00a0minutes" in again.data.decode()
    monkeypatch.setattr(time, "time", lambda: started + lifetime + 60)
    # After the first deadline, the member signs in.
    posted = flow.http.post("/malakoff/login", data={
        "interaction": interaction, "identifier": flow.identifier, "password": PASSWORD,
        "csrf_token": csrf_token(page.data)})
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    assert "code" in query(flow.second_factor().headers["Location"])


def test_more_time_restarts_the_steps_after_the_password(flow, monkeypatch):
    flow.give_password()
    choose = flow.http.get("/malakoff/login/code")
    started = time.time()
    monkeypatch.setattr(time, "time", lambda: started + PENDING_TTL - 60)
    response = _extend(flow, choose)
    assert response.status_code == 200
    # Limited by the pending steps (15 minutes), not by the request (30 minutes).
    assert PENDING_TTL - 5 <= response.json["expires_in"] <= PENDING_TTL
    monkeypatch.setattr(time, "time", lambda: started + PENDING_TTL + 120)
    assert flow.http.get("/malakoff/login/code").status_code == 200


def test_extensions_are_capped_per_sign_in(flow):
    page, interaction = _login_page(flow)
    for _ in range(ratelimit.SIGN_IN_EXTENSIONS.limit):
        assert _extend(flow, page, interaction).status_code == 200
    refused = _extend(flow, page, interaction)
    assert refused.status_code == 429
    assert refused.json["error"] == "too_many_extensions"
    assert ratelimit.SIGN_IN_EXTENSIONS.limit >= 10  # WCAG 2.2.1: at least ten times


def test_an_unknown_or_expired_sign_in_cannot_be_extended(flow, app, monkeypatch):
    page, interaction = _login_page(flow)
    unknown = _extend(flow, page, "no-such-interaction")
    assert unknown.status_code == 404
    assert unknown.json == {"error": "expired", "error_description":
                            "Le temps pour vous connecter est écoulé. Pour votre sécurité, "
                                                   "recommencez la connexion."}
    # Nothing in progress at all.
    assert _extend(flow, page).status_code == 404
    # The request past its lifetime.
    started = time.time()
    lifetime = app.extensions["idp"].settings.interaction_ttl
    monkeypatch.setattr(time, "time", lambda: started + lifetime + 1)
    assert _extend(flow, page, interaction).status_code == 404
    # Steps after the password past their lifetime.
    flow.give_password()
    later = time.time() + PENDING_TTL + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert _extend(flow, page).status_code == 404


def test_more_time_needs_the_csrf_token(flow):
    _page, interaction = _login_page(flow)
    response = flow.http.post("/malakoff/login/extend", data={"interaction": interaction}, headers=JSON)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_another_tenants_sign_in_is_not_extended(flow, app, monkeypatch):
    page, interaction = _login_page(flow)
    started, lifetime = time.time(), app.extensions["idp"].settings.interaction_ttl
    monkeypatch.setattr(time, "time", lambda: started + lifetime - 30)
    response = _extend(flow, page, interaction, tenant="miel")
    assert response.status_code == 404
    assert json.loads(response.data)["error"] == "expired"
    # The request kept its own deadline.
    monkeypatch.setattr(time, "time", lambda: started + lifetime + 1)
    assert _extend(flow, page, interaction).status_code == 404


@pytest.mark.parametrize("lang", ["en"])
def test_the_limits_are_said_in_english_too(flow, lang):
    html = flow.authorize(prompt="login", lang=lang).data.decode()
    assert "For your security, you have 30 minutes left to finish signing in." in html
    assert "I need more time" in html


def test_the_statement_describes_the_warning_instead_of_listing_the_limits_as_a_barrier(client):
    html = client.get("/malakoff/accessibilite").data.decode()
    assert "sans avertissement préalable" not in html
    assert ("une demande de connexion est valable 30\u00a0minutes, et 15\u00a0minutes une fois le mot de "
            "passe saisi\u00a0; un code reçu par e-mail ou par SMS est valable 3\u00a0minutes") in html
    assert "vous redonne tout le délai, jusqu’à 20\u00a0fois" in html

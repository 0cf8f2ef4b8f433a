"""Refusals answered by the one error boundary: the page or JSON, the status, Retry-After,
and a way onward."""

from __future__ import annotations

import dataclasses
import time

from idp import ratelimit
from tests.flows import Flow, csrf_token, interaction_of, sign_in_over


def _send(flow, channel="email"):
    choose = flow.http.get(f"/{flow.tenant}/login/code")
    return flow.http.post(f"/{flow.tenant}/login/code",
                          data={"channel": channel, "csrf_token": csrf_token(choose.data)})


def test_a_locked_sign_in_says_when_it_lifts_in_retry_after(flow):
    for _ in range(ratelimit.LOGIN_PER_IDENTIFIER.limit):
        locked = flow.login(flow.authorize(), password="wrong")
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= ratelimit.LOGIN_PER_IDENTIFIER.window
    assert "réinitialisez votre mot de passe".encode() in locked.data


def test_a_new_code_asked_too_soon_says_when_on_the_code_page(flow):
    flow.give_password()
    _send(flow)
    page = flow.http.get(f"/{flow.tenant}/login/code/verify")
    again = flow.http.post(f"/{flow.tenant}/login/code/send",
                           data={"channel": "email", "csrf_token": csrf_token(page.data)})
    assert again.status_code == 429
    assert 0 < int(again.headers["Retry-After"]) <= 30
    assert f'action="/{flow.tenant}/login/code/verify"'.encode() in again.data


def test_the_send_limit_per_address_counts_every_code(flow, monkeypatch):
    """Sign-in codes and account-page codes share one budget per client address."""
    monkeypatch.setattr(ratelimit, "OTP_SEND_PER_IP", ratelimit.Limit("otp-send:ip", 1, 900))
    flow.give_password()
    assert _send(flow).status_code == 303
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    refused = _send(flow, "sms")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers


def test_a_step_of_a_sign_in_that_is_gone_says_so_and_leads_to_the_sign_in_page(client):
    response = client.get("/malakoff/login/code")
    assert response.status_code == 400
    assert "Votre demande de connexion a expiré".encode() in response.data
    assert b'href="/malakoff/login"' in response.data


def test_a_sign_in_page_reached_again_once_signed_in_says_so_and_leads_back(flow):
    """The Back button from the portal: the pages of the sign-in that is over."""
    shown = flow.authorize()
    interaction = interaction_of(shown.data)
    assert flow.login(shown).headers["Location"].startswith("https://rp.example.org/callback?code=")
    for path in (f"/login?interaction={interaction}", "/login/code", "/login/code/verify"):
        page = flow.http.get(f"/malakoff{path}&redirect_uri=https://evil.example/"
                             if "?" in path else f"/malakoff{path}")
        sign_in_over(page)
        text = page.get_data(as_text=True)
        assert "a expiré" not in text
        # Back to the application the session signed in to (its registered address), or the account.
        assert ('<a class="button button-primary" href="https://rp.example.org/">'
                'Retourner sur Portail de test</a>') in text
        assert 'href="/malakoff/account">Aller à mon compte</a>' in text
        assert 'href="https://evil.example' not in text


def test_without_a_web_address_for_the_application_the_way_back_is_the_brand_s_portal(app, client, make):
    tenants = app.extensions["idp"].tenants
    tenants["malakoff"] = dataclasses.replace(tenants["malakoff"],
                                              portal_url="https://espace-client.example.org/")
    flow = Flow(client, "malakoff", make.client(redirect_uris=("com.example.app:/callback",)),
                make.account())
    shown = flow.authorize()
    interaction = interaction_of(shown.data)
    assert flow.login(shown).headers["Location"].startswith("com.example.app:/callback?code=")
    page = client.get(f"/malakoff/login?interaction={interaction}")
    sign_in_over(page)
    text = page.get_data(as_text=True)
    assert 'href="https://espace-client.example.org/">Aller à mon Espace Client</a>' in text
    assert "com.example.app" not in text


def test_scripts_get_refusals_as_json(flow):
    page = flow.http.get(f"/{flow.tenant}/login")
    response = flow.http.post(f"/{flow.tenant}/login/code/verify",
                              data={"csrf_token": csrf_token(page.data)},
                              headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["error"] == "expired"

"""Refusals answered by the one error boundary: the page or JSON, the status, Retry-After,
and a way onward."""

from __future__ import annotations

import time

from idp import ratelimit
from tests.flows import csrf_token


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


def test_scripts_get_refusals_as_json(flow):
    page = flow.http.get(f"/{flow.tenant}/login")
    response = flow.http.post(f"/{flow.tenant}/login/code/verify",
                              data={"csrf_token": csrf_token(page.data)},
                              headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["error"] == "expired"

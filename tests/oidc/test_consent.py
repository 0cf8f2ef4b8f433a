"""Consent for clients that are not first-party; first-party portals skip it."""

from __future__ import annotations

import pytest

from tests.flows import Flow, csrf_token, query


@pytest.fixture
def third_party(client, make, member):
    return Flow(client, "malakoff", make.client(first_party=False), member)


def _consent_page(flow, response):
    response = flow.login(response)
    assert response.status_code == 303, response.data[:300]
    location = response.headers["Location"]
    assert "/malakoff/consent?interaction=" in location
    return location, flow.http.get(location)


def test_first_party_portal_skips_consent(flow):
    assert "code" in query(flow.sign_in().headers["Location"])


def test_third_party_client_asks_consent_once(third_party):
    location, page = _consent_page(third_party, third_party.authorize())
    assert page.status_code == 200
    assert "Portail de test souhaite accéder".encode() in page.data
    # The authorization request's time limit, which "more time" extends by its interaction id.
    assert b"il vous reste 30 minutes pour terminer votre connexion." in page.data
    assert f'data-deadline-interaction="{query(location)["interaction"]}"'.encode() in page.data
    posted = third_party.http.post(location, data={
        "interaction": query(location)["interaction"], "allow": "Autoriser",
        "csrf_token": csrf_token(page.data)})
    final = third_party.http.get(posted.headers["Location"])
    assert "code" in query(final.headers["Location"])
    # Remembered: the next request goes straight through.
    again = third_party.authorize()
    assert "code" in query(again.headers["Location"])


def test_refusing_consent_answers_access_denied(third_party):
    location, page = _consent_page(third_party, third_party.authorize())
    posted = third_party.http.post(location, data={
        "interaction": query(location)["interaction"], "deny": "Refuser",
        "csrf_token": csrf_token(page.data)})
    params = query(posted.headers["Location"])
    assert params["error"] == "access_denied"
    assert params["iss"] == "http://localhost/malakoff"


def test_prompt_none_without_consent_answers_consent_required(third_party):
    third_party.login(third_party.authorize())  # signed in, consent not given
    params = query(third_party.authorize(prompt="none").headers["Location"])
    assert params["error"] == "consent_required"


def test_prompt_consent_asks_again(third_party):
    location, page = _consent_page(third_party, third_party.authorize())
    third_party.http.post(location, data={
        "interaction": query(location)["interaction"], "allow": "Autoriser",
        "csrf_token": csrf_token(page.data)})
    response = third_party.authorize(prompt="consent")
    assert "/malakoff/consent?interaction=" in response.headers["Location"]


def test_consent_without_csrf_token_changes_nothing(third_party):
    location, _page = _consent_page(third_party, third_party.authorize())
    posted = third_party.http.post(location, data={
        "interaction": query(location)["interaction"], "allow": "Autoriser"})
    assert posted.status_code == 400
    assert "/consent" in third_party.authorize().headers["Location"]

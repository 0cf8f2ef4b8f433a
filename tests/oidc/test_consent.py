"""Consent for clients that are not first-party; first-party portals skip it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp.oidc.models import Consent
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
    assert "il vous reste 30\u00a0minutes pour terminer votre connexion.".encode() in page.data
    assert f'data-deadline-interaction="{query(location)["interaction"]}"'.encode() in page.data
    posted = third_party.http.post(location, data={
        "interaction": query(location)["interaction"], "allow": "Autoriser",
        "csrf_token": csrf_token(page.data)})
    # The answer to the consent sends the browser back to the client, with the code.
    assert "code" in query(posted.headers["Location"])
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


def _allow(flow, location, page):
    return flow.http.post(location, data={
        "interaction": query(location)["interaction"], "allow": "Autoriser",
        "csrf_token": csrf_token(page.data)})


CLAIMS = json.dumps({"userinfo": {"phone_number": None, "birthdate": None, "email": None},
                     "id_token": {"family_name": {"essential": True}}})


def test_claims_asked_by_name_are_shown_and_consented(third_party, db):
    """OIDC Core 5.5: the claims parameter releases claims like a scope; the member consents."""
    location, page = _consent_page(third_party, third_party.authorize(scope="openid", claims=CLAIMS))
    text = page.data.decode()
    for label in ("votre identifiant de compte", "votre numéro de téléphone mobile",
                  "votre date de naissance", "votre adresse e-mail", "votre nom"):
        assert label in text, label

    final = _allow(third_party, location, page)
    tokens = third_party.token(query(final.headers["Location"])["code"]).json

    info = third_party.http.get("/malakoff/userinfo",
                                headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert set(info) == {"sub", "phone_number", "birthdate", "email"}
    assert third_party.id_token_claims(tokens["id_token"])["family_name"] == "Martin"
    db.rollback()
    consent = db.scalar(select(Consent).where(Consent.client_id == third_party.rp.client_id))
    assert consent.scopes == ["openid"]
    assert consent.claims == ["birthdate", "email", "family_name", "phone_number"]
    # Covered now: prompt=none goes through for the same claims, or fewer.
    fewer = json.dumps({"userinfo": {"email": None}})
    for asked in (CLAIMS, fewer):
        silent = third_party.authorize(prompt="none", scope="openid", claims=asked)
        assert "code" in query(silent.headers["Location"])


def test_a_claim_not_consented_is_consent_required_with_prompt_none(third_party):
    location, page = _consent_page(third_party, third_party.authorize(scope="openid"))
    assert "votre numéro de téléphone" not in page.data.decode()
    _allow(third_party, location, page)

    more = json.dumps({"userinfo": {"phone_number": None}})
    params = query(third_party.authorize(prompt="none", scope="openid", claims=more).headers["Location"])

    assert params["error"] == "consent_required"
    # Without prompt=none the member is asked, for that claim.
    response = third_party.authorize(scope="openid", claims=more)
    assert "/malakoff/consent?interaction=" in response.headers["Location"]
    page = third_party.http.get(response.headers["Location"])
    assert "votre numéro de téléphone mobile" in page.data.decode()


def test_claims_of_a_consented_scope_need_no_further_consent(third_party):
    location, page = _consent_page(third_party, third_party.authorize(scope="openid profile"))
    _allow(third_party, location, page)

    names = json.dumps({"id_token": {"given_name": None, "birthdate": None}})
    response = third_party.authorize(prompt="none", scope="openid", claims=names)

    assert "code" in query(response.headers["Location"])


def test_claims_the_client_may_not_have_are_neither_shown_nor_released(client, make, member):
    narrow = Flow(client, "malakoff", make.client(first_party=False, scopes=("openid", "profile")),
                  member)
    location, page = _consent_page(narrow, narrow.authorize(scope="openid", claims=CLAIMS))
    text = page.data.decode()
    assert "votre numéro de téléphone" not in text and "adresse e-mail" not in text
    assert "votre date de naissance" in text

    final = _allow(narrow, location, page)
    tokens = narrow.token(query(final.headers["Location"])["code"]).json
    info = narrow.http.get("/malakoff/userinfo",
                           headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert set(info) == {"sub", "birthdate"}


def test_unknown_scope_values_are_neither_shown_nor_asked_again(third_party):
    # OIDC Core 3.1.2.1: not understood, so ignored; the consent covers what is granted.
    location, page = _consent_page(third_party, third_party.authorize(scope="openid email address"))
    assert b"<li>address</li>" not in page.data
    assert "votre adresse e-mail" in page.data.decode()
    _allow(third_party, location, page)

    response = third_party.authorize(prompt="none", scope="openid email address")

    assert "code" in query(response.headers["Location"])

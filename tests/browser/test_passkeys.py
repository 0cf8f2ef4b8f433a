"""A member adds a passkey in headless Chromium and signs in with it in one click, Chromium's
virtual authenticator playing the phone's (journeys.virtual_authenticator)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.journeys import demo_account, virtual_authenticator, without_passkey_autofill

pytestmark = pytest.mark.browser


def _credentials(devtools, authenticator: str) -> list[dict]:
    return devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]


@pytest.fixture
def member_with_a_passkey(browse, page):
    """The Malakoff demo member, signed in with a code, who added a passkey, then signed out."""
    account = demo_account("malakoff")
    devtools, authenticator = virtual_authenticator(page)
    member = browse("malakoff")
    member.signs_in_as(account, "email")
    member.opens_account(account.given_name)
    member.adds_passkey(account.password, "Mon téléphone")
    assert [c["isResidentCredential"] for c in _credentials(devtools, authenticator)] == [True]
    member.opens_portal()
    member.logs_out()
    return member, devtools, authenticator


def test_a_member_adds_a_passkey_then_signs_in_in_one_click(member_with_a_passkey):
    member, devtools, authenticator = member_with_a_passkey
    without_passkey_autofill(member.page)
    member.signs_in_from_portal()
    member.is_asked_password()
    expect(member.page.get_by_label("Adresse e-mail", exact=True)).to_have_attribute(
        "autocomplete", "username webauthn")
    screenshot(member.page, "passkey-sign-in")
    member.signs_in_with_passkey()
    member.is_back_at_portal("Jeanne")
    assert member.claim("acr") == "urn:mh:acr:phr"
    assert member.claim("amr") == "swk, user"
    screenshot(member.page, "passkey-portal-signed-in")
    assert _credentials(devtools, authenticator)[0]["signCount"] >= 1
    member.opens_account("Jeanne")
    expect(member.page.get_by_role("region", name="Clés d’accès")).to_contain_text("Dernière utilisation")
    screenshot(member.page, "passkey-listed")


def test_the_identifier_field_offers_the_passkey_in_its_autofill(member_with_a_passkey):
    member, _devtools, _authenticator = member_with_a_passkey
    # Conditional mediation: the request waits in the identifier field's autofill from the
    # start; the virtual authenticator picks the passkey there as a member would.
    member.signs_in_from_portal()
    member.is_back_at_portal("Jeanne")
    assert member.claim("acr") == "urn:mh:acr:phr"


def test_without_webauthn_the_sign_in_page_shows_the_password_form_only(browse, page):
    page.add_init_script("delete window.PublicKeyCredential;")
    member = browse("malakoff")
    member.starts_sign_in()
    expect(page.get_by_role("button", name="Me connecter", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Me connecter en 1 clic")).to_be_hidden()

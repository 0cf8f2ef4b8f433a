"""A member adds a passkey in headless Chromium and signs in with it in one click.

Chromium's virtual authenticator (DevTools protocol, WebAuthn domain) plays a
phone's built-in authenticator: resident keys, user verification that succeeds.
"""

from __future__ import annotations

import re

import pytest

from idp.demo.setup import DEMO_ACCOUNTS
from tests.browser.conftest import screenshot
from tests.flows import last_code

pytestmark = pytest.mark.browser


def _virtual_authenticator(page) -> tuple[object, str]:
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    added = devtools.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return devtools, added["authenticatorId"]


def _sign_in_with_a_code(page, live, account) -> None:
    portal = live.portals[account.tenant]
    page.goto(f"{portal}/login")
    page.get_by_label("Adresse e-mail").fill(account.identifier)
    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Me connecter", exact=True).click()
    page.get_by_role("button", name="Recevoir mon code").click()
    code_input = page.get_by_label("Code à 6 chiffres")
    code_input.wait_for()
    code_input.fill(last_code(live.app, "email"))
    page.get_by_role("button", name="Valider").click()
    page.wait_for_url(f"{portal}/")


def _add_passkey(page, base: str, account, shots: bool = False) -> None:
    """From the account page: the password again, then the device creates the passkey."""
    page.goto(f"{base}/account")
    page.get_by_role("link", name="Ajouter une clé d’accès").click()
    page.get_by_label("Mot de passe actuel").fill(account.password)
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url(f"{base}/account/passkeys/create")
    page.get_by_label("Nom de la clé d’accès").fill("Mon téléphone")
    if shots:
        screenshot(page, "passkey-create")
    page.get_by_role("button", name="Créer ma clé d’accès").click()
    page.wait_for_url(f"{base}/account?changed=passkey-added")
    listed = page.locator("section", has=page.get_by_role("heading", name="Clés d’accès"))
    assert "Mon téléphone" in listed.inner_text() and "Jamais utilisée" in listed.inner_text()
    if shots:
        screenshot(page, "passkey-listed")


def _sign_out(page, portal: str) -> None:
    """Out of the portal and the provider (RP-initiated logout)."""
    page.goto(portal)
    page.get_by_role("button", name="Se déconnecter").click()
    page.get_by_role("button", name="Me déconnecter").click()
    page.wait_for_url(f"{portal}/**")
    assert page.get_by_role("link", name="Se connecter").is_visible()


def _portal_acr(page) -> str:
    row = page.locator("tr", has=page.locator("code", has_text=re.compile("^acr$")))
    return row.locator("td").first.inner_text()


def test_a_member_adds_a_passkey_then_signs_in_in_one_click(page, live_secure):
    account = DEMO_ACCOUNTS[0]
    base = f"{live_secure.base_url}/{account.tenant}"
    portal = live_secure.portals[account.tenant]
    devtools, authenticator = _virtual_authenticator(page)
    _sign_in_with_a_code(page, live_secure, account)
    _add_passkey(page, base, account, shots=True)
    credentials = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert [c["isResidentCredential"] for c in credentials["credentials"]] == [True]
    _sign_out(page, portal)

    # A browser without autofill for passkeys: the button, one click, no password, no code.
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = "
                         "() => Promise.resolve(false);")
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(f"{base}/login?interaction=*")
    one_click = page.get_by_role("button", name="Me connecter en 1 clic")
    one_click.wait_for()
    screenshot(page, "passkey-sign-in")
    one_click.click()
    page.wait_for_url(f"{portal}/")
    assert _portal_acr(page) == "urn:mh:acr:phr"
    screenshot(page, "passkey-portal-signed-in")
    used = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert used["credentials"][0]["signCount"] >= 1


def test_the_identifier_field_offers_the_passkey_in_its_autofill(page, live_secure):
    account = DEMO_ACCOUNTS[0]
    base = f"{live_secure.base_url}/{account.tenant}"
    portal = live_secure.portals[account.tenant]
    _virtual_authenticator(page)
    _sign_in_with_a_code(page, live_secure, account)
    _add_passkey(page, base, account)
    _sign_out(page, portal)
    # Conditional mediation: the request waits in the identifier field's autofill from the
    # start; the virtual authenticator picks the passkey there as a member would.
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(f"{portal}/")
    assert _portal_acr(page) == "urn:mh:acr:phr"


def test_without_webauthn_the_sign_in_page_shows_the_password_form_only(page, live_secure):
    page.add_init_script("delete window.PublicKeyCredential;")
    page.goto(f"{live_secure.base_url}/malakoff/login")
    assert page.get_by_role("button", name="Me connecter", exact=True).is_visible()
    assert not page.get_by_role("button", name="Me connecter en 1 clic").is_visible()

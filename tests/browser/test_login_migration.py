"""A legacy Malakoff member moves from member number to email in headless Chromium (SPEC §7)."""

from __future__ import annotations

import pytest

from idp.demo.setup import DEMO_ACCOUNTS
from tests.browser.conftest import screenshot
from tests.factories import tenants_in_phase
from tests.flows import last_code

pytestmark = pytest.mark.browser

LEGACY = next(account for account in DEMO_ACCOUNTS if account.legacy)


@pytest.fixture
def settings(settings, tmp_path):
    return {**settings, "tenants_dir": tenants_in_phase(tmp_path / "tenants", "open")}


def _sign_in(page, live, identifier):
    page.goto(live.portals["malakoff"])
    page.get_by_role("link", name="Se connecter").or_(
        page.get_by_role("button", name="Se connecter")).first.click()
    page.wait_for_url(f"{live.base_url}/malakoff/login?interaction=*")
    page.get_by_label("Adresse e-mail").fill(identifier)
    page.get_by_label("Mot de passe").fill(LEGACY.password)
    page.get_by_role("button", name="Me connecter").click()


def _enter_code(page, live):
    page.wait_for_url(f"{live.base_url}/malakoff/login/code")
    page.get_by_label("Par e-mail", exact=False).check()
    page.get_by_role("button", name="Recevoir mon code").click()
    code_input = page.get_by_label("Code à 6 chiffres")
    code_input.wait_for()
    code_input.fill(last_code(live.app, "email"))
    page.get_by_role("button", name="Valider").click()


def test_a_legacy_member_moves_to_the_email_and_then_signs_in_with_it_only(page, live_secure):
    live = live_secure
    _sign_in(page, live, LEGACY.member_number)
    _enter_code(page, live)

    page.wait_for_url(f"{live.base_url}/malakoff/login/update-identifier")
    assert page.locator("h1").inner_text() == "Mettre à jour mon identifiant"
    email = page.get_by_label("Votre adresse e-mail, votre nouvel identifiant")
    assert email.input_value() == LEGACY.email  # prefilled with the address on file
    screenshot(page, "migration-update-identifier-malakoff")
    page.get_by_role("button", name="Continuer").click()

    # Back on the portal, signed in: the code just received at this address proved it.
    page.wait_for_url(f"{live.portals['malakoff']}/")
    assert f"Bonjour {LEGACY.given_name}" in page.content()
    account_link = page.get_by_role("link", name="Mon compte et ma sécurité")
    assert account_link.get_attribute("href") == f"{live.base_url}/malakoff/account"
    page.context.clear_cookies()

    # The member number no longer signs in...
    _sign_in(page, live, LEGACY.member_number)
    alert = page.get_by_role("alert")
    assert "votre numéro d’adhérent ne sert plus" in alert.inner_text()
    screenshot(page, "migration-member-number-refused-malakoff")

    # ...the email does, with the same password.
    page.get_by_label("Adresse e-mail").fill(LEGACY.email)
    page.get_by_label("Mot de passe").fill(LEGACY.password)
    page.get_by_role("button", name="Me connecter").click()
    _enter_code(page, live)
    page.wait_for_url(f"{live.portals['malakoff']}/")
    assert f"Bonjour {LEGACY.given_name}" in page.content()
    screenshot(page, "migration-signed-in-with-email-malakoff")

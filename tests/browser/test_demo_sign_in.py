"""A member signs in through a demo portal in headless Chromium."""

from __future__ import annotations

import pytest

from idp.demo.setup import DEMO_ACCOUNTS
from tests.browser.conftest import screenshot
from tests.flows import last_code

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("account", [a for a in DEMO_ACCOUNTS if not a.legacy], ids=lambda a: a.tenant)
def test_member_signs_in_from_the_portal(page, live_secure, account):
    portal = live_secure.portals[account.tenant]
    page.goto(portal)
    page.get_by_role("link", name="Se connecter").or_(
        page.get_by_role("button", name="Se connecter")).first.click()

    page.wait_for_url(f"{live_secure.base_url}/{account.tenant}/login?interaction=*")
    assert page.locator("h1").count() == 1
    screenshot(page, f"sign-in-{account.tenant}")
    label = "Adresse e-mail" if account.tenant == "malakoff" else "Numéro d’adhérent"
    page.get_by_label(label).fill(account.identifier)
    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Me connecter").click()

    page.wait_for_url(f"{live_secure.base_url}/{account.tenant}/login/code")
    screenshot(page, f"code-choice-{account.tenant}")
    page.get_by_label("Par e-mail", exact=False).check()
    page.get_by_role("button", name="Recevoir mon code").click()
    code_input = page.get_by_label("Code à 6 chiffres")
    code_input.wait_for()  # the code is in the outbox once this page is shown
    code_input.fill(last_code(live_secure.app, "email"))
    screenshot(page, f"code-entry-{account.tenant}")
    page.get_by_role("button", name="Valider").click()

    page.wait_for_url(f"{portal}/")
    assert f"Bonjour {account.given_name}" in page.content()
    assert account.member_number in page.content()
    screenshot(page, f"portal-signed-in-{account.tenant}")
    cookies = {c["name"]: c for c in page.context.cookies(live_secure.base_url)}
    session = cookies["__Host-idp-session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"


def test_wrong_password_shows_an_accessible_error(page, live_secure):
    account = DEMO_ACCOUNTS[0]
    page.goto(f"{live_secure.portals['malakoff']}/login")
    page.get_by_label("Adresse e-mail").fill(account.identifier)
    page.get_by_label("Mot de passe").fill("not-the-password")
    page.get_by_role("button", name="Me connecter").click()
    alert = page.get_by_role("alert")
    assert "Identifiant ou mot de passe incorrect." in alert.inner_text()
    screenshot(page, "sign-in-error-malakoff")

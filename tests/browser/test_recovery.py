"""Forgot password and forgot identifier, from the sign-in page to signing in again."""

from __future__ import annotations

import pytest

from tests.browser.journeys import demo_account

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Lune-Rousse-Cascade-93!"


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_member_resets_a_forgotten_password_and_signs_in_with_it(browse, tenant):
    account = demo_account(tenant)
    member = browse(tenant)
    member.starts_sign_in()
    member.forgets_password(account.identifier)
    member.resets_password(NEW_PASSWORD)
    member.click("link", "Me connecter")
    member.is_asked_password()
    member.gives_password(account.identifier, NEW_PASSWORD)
    member.receives_code("email")
    member.enters_code("email")
    member.page.wait_for_url(f"{member.provider}/account")
    member.sees("account", f"Bonjour {account.given_name}")


def test_miel_member_gets_a_forgotten_member_number_by_email(browse):
    account = demo_account("miel")
    member = browse("miel")
    member.starts_sign_in()
    member.click("link", "Mot de passe oublié\u00a0?")
    member.sees("forgot-password", "Mot de passe oublié")
    email = member.forgets_identifier("1 56 04 44 109 073 14", "02/04/1956", "44", "Lefèvre", "Étienne")
    assert account.member_number in email

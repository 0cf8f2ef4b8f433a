"""The account page: change the password and the mobile, forget a trusted browser, delete the account."""

from __future__ import annotations

import pytest

from tests.browser.journeys import demo_account

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Basalte-Violet-Ressac-27!"


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_member_manages_their_account_then_deletes_it(browse, tenant):
    account = demo_account(tenant)
    member = browse(tenant)
    member.signs_in_as(account, "email", remember=True)
    member.opens_account(account.given_name)
    member.reads_accessibility_statement()
    member.opens_account(account.given_name)
    member.revokes_device()
    if tenant == "miel":
        member.changes_preferences()
    member.changes_mobile(account.password, "06 98 76 54 32", "+33698765432")
    member.changes_password(account.password, NEW_PASSWORD)
    member.deletes_account(NEW_PASSWORD)

    # Gone: the provider no longer knows this member.
    member.page.goto(f"{member.provider}/login")
    member.is_asked_password()
    member.gives_password(account.identifier, NEW_PASSWORD)
    member.sees_errors("sign-in-error", "Identifiant ou mot de passe incorrect.")


def test_the_member_changes_their_email_and_signs_in_with_the_new_one(browse):
    account = demo_account("malakoff")
    member = browse("malakoff")
    member.signs_in_as(account, "sms")
    member.opens_account(account.given_name)
    member.changes_email(account.password, "jeanne.nouvelle@example.net")
    member.page.context.clear_cookies()
    member.signs_in("jeanne.nouvelle@example.net", account.password, account.given_name, "email")

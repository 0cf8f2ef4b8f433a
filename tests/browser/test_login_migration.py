"""A legacy Malakoff member moves from member number to email, in headless Chromium (SPEC §7)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from idp.demo.setup import DEMO_ACCOUNTS
from tests.factories import tenants_in_phase

pytestmark = pytest.mark.browser

LEGACY = next(account for account in DEMO_ACCOUNTS if account.legacy)


@pytest.fixture
def phase() -> str:
    return "open"


@pytest.fixture
def settings(settings, tmp_path, phase):
    return {**settings, "tenants_dir": tenants_in_phase(tmp_path / "tenants", phase)}


def test_a_legacy_member_moves_to_the_email_and_then_signs_in_with_it_only(browse):
    member = browse("malakoff")
    member.starts_sign_in()
    member.gives_password(LEGACY.member_number, LEGACY.password)
    member.receives_code("email")
    member.enters_code("email")
    # The code just received at the address on file proves it: confirming it is enough.
    member.updates_identifier(LEGACY.email)
    member.is_back_at_portal(LEGACY.given_name)
    expect(member.page.get_by_role("link", name="Mon compte et ma sécurité")).to_have_attribute(
        "href", f"{member.provider}/account")
    member.page.context.clear_cookies()

    # The member number no longer signs in; the email does, with the same password.
    member.starts_sign_in()
    member.gives_password(LEGACY.member_number, LEGACY.password)
    member.sees_errors("sign-in-legacy-error", "votre numéro d’adhérent ne sert plus")
    member.gives_password(LEGACY.email, LEGACY.password)
    member.receives_code("email")
    member.enters_code("email")
    member.is_back_at_portal(LEGACY.given_name)


@pytest.mark.parametrize("phase", ["closed"])
def test_after_the_cutoff_the_member_number_is_refused_and_the_identifier_recovered(browse):
    member = browse("malakoff")
    member.starts_sign_in()
    member.gives_password(LEGACY.member_number, LEGACY.password)
    member.sees_errors("sign-in-refused-legacy", "votre identifiant est désormais votre adresse e-mail")
    member.click("link", "Retrouver mon identifiant")
    body = member.recovers_login_email(LEGACY.member_number)
    assert LEGACY.email in body


"""A trusted browser signs in without a code, until a portal asks for the two-factor level."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.journeys import demo_account

pytestmark = pytest.mark.browser

OTP = "urn:mh:acr:otp"


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_remembered_browser_skips_the_code_until_a_portal_steps_up(browse, tenant):
    account = demo_account(tenant)
    member = browse(tenant)
    member.signs_in_as(account, "sms", remember=True)
    # Back from the portal: the code page says the sign-in is done.
    member.goes_back_once_signed_in(account.given_name)
    member.logs_out()

    # Second sign-in on this browser: the password alone.
    member.signs_in_from_portal()
    member.is_asked_password()
    member.gives_password(account.identifier, account.password)
    member.is_back_at_portal(account.given_name)
    # Back from the portal: the sign-in page, at the pushed request's address, says it is done.
    member.goes_back_once_signed_in(account.given_name)
    assert member.claim("acr") == "urn:mh:acr:pwd"
    assert member.claim("amr") == "pwd"

    # The portal asks for the two-factor level: a code, even here, and no password again.
    member.signs_in_from_portal(acr_values=OTP)
    member.receives_code("email")
    expect(member.page.get_by_label("Se souvenir de moi", exact=False)).to_be_visible()
    member.enters_code("email")
    member.is_back_at_portal(account.given_name)
    assert member.claim("acr") == OTP
    assert member.claim("amr") == "pwd, otp, mail"

"""Members sign in from their portal with a code by email or SMS, and sign out (headless Chromium)."""

from __future__ import annotations

import pytest

from tests.browser.journeys import demo_account

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("channel", ["email", "sms"])
@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_member_signs_in_with_a_code_and_signs_out(browse, tenant, channel):
    account = demo_account(tenant)
    member = browse(tenant)
    member.starts_sign_in()
    member.gives_wrong_password(account.identifier)
    member.gives_password(account.identifier, account.password)
    member.receives_code(channel)
    member.enters_code(channel, first_wrong=True)
    member.is_back_at_portal(account.given_name)
    assert account.member_number in member.page.content()
    # The portal pushed its request (RFC 9126) and shows the reference the browser carried.
    assert "urn:ietf:params:oauth:request_uri:" in member.page.content()
    assert member.claim("amr") == f"pwd, otp, {'mail' if channel == 'email' else 'sms'}"
    cookies = {c["name"]: c for c in member.page.context.cookies(member.live.base_url)}
    session = cookies["__Host-idp-session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    member.logs_out()
    # Signed out at the provider too: its account page asks for the password again.
    member.page.goto(f"{member.provider}/account")
    member.is_asked_password()

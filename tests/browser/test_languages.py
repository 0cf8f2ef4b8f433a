"""English pages: chosen by the browser's language or by the portal's ui_locales; consent to a
third-party portal."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_page
from tests.browser.journeys import Member, code_in, demo_account

pytestmark = pytest.mark.browser


@pytest.fixture
def english_page(chromium, check):
    page = open_page(chromium, "en-GB", check)
    yield page
    page.context.close()


def test_an_english_browser_signs_in_in_english(english_page, live_secure, check):
    account = demo_account("malakoff")
    member = Member(english_page, live_secure, "malakoff", check)
    page = member.page
    member.opens_portal()
    member.signs_in_from_portal()
    page.wait_for_url(re.compile(rf"{re.escape(member.provider)}/authorize\?"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    member.sees("en-sign-in", "Sign in to your Espace Client")
    page.get_by_label("Email address", exact=True).fill(account.identifier)
    page.get_by_label("Password", exact=True).fill("Not-The-Password-1!")
    member.click("button", "Sign in")
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: "))
    member.sees("en-sign-in-error")
    page.get_by_label("Password", exact=True).fill(account.password)
    member.click("button", "Sign in")
    member.sees("en-code-choice", "Receive a sign-in code")
    member.click("button", "Send my code")
    member.sees("en-code-entry", "Enter your code")
    page.get_by_label("6-digit code").fill(code_in(live_secure, "otp_code", "email"))
    member.click("button", "Confirm")
    member.is_back_at_portal(account.given_name)


def test_the_portal_asks_english_with_ui_locales(browse):
    member = browse("miel")
    member.signs_in_from_portal(ui_locales="en fr")
    member.page.wait_for_url(re.compile(rf"{re.escape(member.provider)}/authorize\?"))
    expect(member.page.locator("html")).to_have_attribute("lang", "en")
    member.sees("en-sign-in", "Sign in to your Espace Affilié")
    footer = member.page.get_by_role("contentinfo")
    footer.get_by_role("link", name="Accessibility: partially compliant").click()
    member.sees("en-accessibility", "Accessibility statement")


def test_member_refuses_a_third_party_portal_on_the_consent_page(browse):
    browse("miel").refuses_third_party(demo_account("miel"), "Comparateur Santé")

"""The sign-in's time limit, in headless Chromium: warned before the end, more time asked with the
keyboard, the sign-in finished after the first deadline (WCAG 2.2.1)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.journeys import demo_account
from tests.browser.test_keyboard import FOCUS_SHOWN

pytestmark = pytest.mark.browser

# Seconds a sign-in may take here: the warning comes 20 seconds before the end (the least WCAG allows).
LIFETIME = 40


@pytest.fixture
def lifetime() -> int:
    return LIFETIME


@pytest.fixture
def settings(settings, lifetime):
    return {**settings, "interaction_ttl": lifetime}


def test_the_member_asks_for_more_time_with_the_keyboard_and_signs_in_after_the_first_deadline(browse):
    account = demo_account("malakoff")
    member = browse("malakoff")
    page = member.page
    member.starts_sign_in()
    first_deadline = time.monotonic() + LIFETIME
    identifier = page.get_by_label("Adresse e-mail", exact=True)
    expect(identifier).to_be_focused()
    expect(page.get_by_text("il vous reste moins de 2 minutes pour terminer votre connexion")).to_be_visible()

    warning = page.locator("[data-deadline-message]")
    expect(warning).to_have_text("Votre connexion expire dans moins de 2 minutes. "
                                 "Avez-vous besoin de plus de temps\u00a0?", timeout=(LIFETIME - 15) * 1000)
    expect(warning).to_have_attribute("role", "alert")
    # The warning does not take the focus from where the member is.
    expect(identifier).to_be_focused()
    member.sees("sign-in-time-warning")

    more_time = page.get_by_role("button", name="J’ai besoin de plus de temps")
    page.keyboard.press("Shift+Tab")
    expect(more_time).to_be_focused()
    assert page.evaluate(FOCUS_SHOWN)
    page.keyboard.press("Enter")
    expect(warning).to_contain_text("C’est fait\u00a0: vous avez plus de temps.")
    expect(warning).to_be_focused()
    expect(more_time).to_be_hidden()
    member.sees("sign-in-time-extended")

    time.sleep(max(0.0, first_deadline - time.monotonic()) + 1)
    member.gives_password(account.identifier, account.password)
    member.receives_code("email")
    member.enters_code("email")
    member.is_back_at_portal(account.given_name)


@pytest.mark.parametrize("lifetime", [21])
def test_once_the_time_is_out_the_page_says_so_and_starts_again(browse):
    account = demo_account("malakoff")
    member = browse("malakoff")
    member.starts_sign_in()
    message = member.page.locator("[data-deadline-message]")
    expect(message).to_have_text("Le temps pour vous connecter est écoulé. Pour votre sécurité, "
                                 "recommencez la connexion.", timeout=25_000)
    member.sees("sign-in-time-out")
    member.click("link", "Recommencer la connexion")
    member.is_asked_password()
    member.gives_password(account.identifier, account.password)
    member.receives_code("email")

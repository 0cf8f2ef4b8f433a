"""Time limits in headless Chromium (WCAG 2.2.1): the sign-in's, and the inactivity limit of a page
with a form; each warned before the end, more time asked with the keyboard, the journey finished
after the first deadline; once the time is out, the page says so."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.journeys import demo_account
from tests.browser.test_keyboard import FOCUS_SHOWN

pytestmark = pytest.mark.browser

# Seconds a sign-in may take here: the warning comes 20 seconds before the end (the least WCAG allows).
LIFETIME = 40
# Seconds of inactivity a session survives in the tests that shorten it (by parametrizing ``idle``).
IDLE = 30


@pytest.fixture
def lifetime() -> int:
    return LIFETIME


@pytest.fixture
def idle() -> int:
    return 30 * 60


@pytest.fixture
def settings(settings, lifetime, idle):
    return {**settings, "interaction_ttl": lifetime, "session_idle_timeout": idle}


def _asks_more_time_with_the_keyboard(page, warning, key: str, *, at_most: int) -> None:
    """``key`` (at most ``at_most`` times) to "J’ai besoin de plus de temps", then Enter."""
    more_time = page.get_by_role("button", name="J’ai besoin de plus de temps")
    for _ in range(at_most):
        page.keyboard.press(key)
        if more_time.evaluate("button => button === document.activeElement"):
            break
    expect(more_time).to_be_focused()
    assert page.evaluate(FOCUS_SHOWN)
    page.keyboard.press("Enter")
    expect(warning).to_contain_text("C’est fait\u00a0: vous avez plus de temps.")
    expect(warning).to_be_focused()
    expect(more_time).to_be_hidden()


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

    # The limit is stated after the form: the button comes just after its "Me connecter".
    _asks_more_time_with_the_keyboard(page, warning, "Tab", at_most=3)
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


@pytest.mark.parametrize("idle", [IDLE])
def test_a_slow_member_asks_for_more_time_with_the_keyboard_and_registers_after_the_first_deadline(browse):
    member = browse("malakoff")
    page = member.page
    member.starts_registration()
    # The session began with this page: without more time, the form would be refused after this.
    first_deadline = time.monotonic() + IDLE
    page.get_by_label("Numéro d’adhérent").fill("23456789")
    page.get_by_label("Nom", exact=True).fill("Dupont Morel")
    page.get_by_label("Prénom").fill("Jean-Pierre")
    page.get_by_label("Date de naissance").fill("23/11/1949")
    page.get_by_label("Adresse e-mail", exact=True).fill("jp.dupont-morel@example.org")
    page.get_by_label("Confirmation de l’adresse e-mail").fill("jp.dupont-morel@example.org")
    mobile = page.get_by_label("Téléphone mobile")
    mobile.fill("06 12 34 56 78")
    page.get_by_label("J’accepte les mentions légales", exact=False).check()
    mobile.focus()

    warning = page.locator(".deadline-session [data-deadline-message]")
    expect(warning).to_have_text("Cette page expire dans moins de 2 minutes faute d’activité. "
                                 "Avez-vous besoin de plus de temps\u00a0?", timeout=IDLE * 1000)
    expect(warning).to_have_attribute("role", "alert")
    expect(mobile).to_be_focused()

    # The warning is the last thing of the page, after the form's button.
    _asks_more_time_with_the_keyboard(page, warning, "Tab", at_most=10)

    time.sleep(max(0.0, first_deadline - time.monotonic()) + 2)
    member.click("button", "Recevoir le code par SMS")
    page.wait_for_url(f"{member.provider}/register/code")
    member.types_registration_code("+33612345678")


def test_once_a_forms_time_is_out_the_page_says_so_and_loads_afresh(browse):
    member = browse("malakoff")
    member.page.clock.install()
    member.starts_registration()
    member.is_warned_the_page_expires("register")
    # The warning kept at the bottom of the screen hides no field the member moves to.
    page = member.page
    page.get_by_label("Confirmation de l’adresse e-mail").focus()
    page.evaluate("window.scrollTo(0, 0)")
    page.keyboard.press("Tab")
    mobile = page.get_by_label("Téléphone mobile")
    expect(mobile).to_be_focused()
    notice = page.locator(".deadline-session")

    def above_the_warning() -> bool:
        box = mobile.bounding_box()
        return box["y"] + box["height"] <= notice.bounding_box()["y"]

    assert above_the_warning()
    # Chromium centres a focused field; browsers that scroll it just into view keep room too.
    page.evaluate("window.scrollTo(0, 0)")
    mobile.evaluate("field => field.scrollIntoView({block: 'nearest'})")
    assert above_the_warning()
    member.lets_the_page_expire("register")
    member.sees("register", "Créer mon compte Espace Client")
    expect(member.page.locator(".deadline-session")).to_contain_text(
        "Pour votre sécurité, cette page expire après 30 minutes sans activité.")

"""A new member creates an account from a demo portal, activates it and signs in (headless Chromium)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from tests.browser.journeys import code_of_the_letter, newest_message

pytestmark = pytest.mark.browser

MALAKOFF_EMAIL = "jp.dupont-morel@example.org"
MALAKOFF_PASSWORD = "Nouveau-Depart-2026!"
MIEL_EMAIL = "f.ndiaye@example.org"
MIEL_PASSWORD = "Granit-Rose-Bastion-48!"


def test_malakoff_member_registers_activates_and_signs_in(browse):
    member = browse("malakoff")
    member.starts_registration()
    member.registers_by_member_number(MALAKOFF_EMAIL)
    member.activates(MALAKOFF_PASSWORD)
    member.signs_in(MALAKOFF_EMAIL, MALAKOFF_PASSWORD, "Jean-Pierre", "email")
    assert "23456789" in member.page.content()


def test_a_member_without_contacts_on_file_registers_with_the_code_of_a_letter(browse):
    member = browse("malakoff")
    member.starts_registration()
    member.registers_without_contacts_on_file("fx.muller@example.org", "06 12 34 56 79")
    member.types_the_code_of_the_letter("77889900")
    member.activates("Colombages-Alsace-2026!")
    member.signs_in("fx.muller@example.org", "Colombages-Alsace-2026!", "François-Xavier", "email")


def test_miel_member_registers_in_three_steps_and_signs_in(browse, live_secure):
    member = browse("miel")
    member.starts_registration()
    member.registers_by_nir(MIEL_EMAIL)
    identifier = newest_message(live_secure, "identifier")
    assert identifier.recipient == MIEL_EMAIL and "76543210" in identifier.body_text
    member.activates(MIEL_PASSWORD, birth_date="30/08/1962")
    member.signs_in("76543210", MIEL_PASSWORD, "Françoise", "sms", first_time=True)
    assert "76543210" in member.page.content()
    session = live_secure.app.extensions["idp"].database.session()
    try:
        account = session.scalar(select(Account).where(Account.tenant == "miel",
                                                       Account.member_number == "76543210"))
        assert account.preferences == {"statements": "post", "letters": "email", "marketing": False}
        assert account.terms_version is not None
    finally:
        session.close()


def test_a_double_tap_on_a_button_sends_its_form_once(browse, live_secure):
    """A member who taps "Valider" twice (or presses again, impatient): the second press sends
    nothing while the first is on its way, so the page that comes is the first one's answer."""
    member = browse("malakoff")
    member.starts_registration()
    member.registers_without_contacts_on_file("fx.muller@example.org", "06 12 34 56 79")
    code = code_of_the_letter(live_secure)
    page = member.page
    page.goto(f"{live_secure.base_url}/malakoff/register/letter")
    page.get_by_label("Numéro d’adhérent").fill("77889900")
    page.get_by_label("Code reçu par courrier").fill(code)
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    def slow(route):  # a phone's connection: the answer comes after the second tap
        if route.request.method == "POST":
            time.sleep(0.6)
        route.continue_()

    page.route("**/register/letter", slow)
    page.evaluate("""() => {
        const button = document.querySelector("main form button[type=submit]");
        button.click();
        setTimeout(() => button.click(), 250);
    }""")
    member.sees("register-sent-once", "Consultez votre messagerie")
    assert posts == [f"{live_secure.base_url}/malakoff/register/letter"]
    session = live_secure.app.extensions["idp"].database.session()
    try:
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.template == "activation")) == 1
    finally:
        session.close()

"""A new member creates an account from a demo portal, activates it and signs in (headless Chromium)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from idp.accounts.models import Account
from idp.channels.models import Message
from tests.browser.conftest import screenshot
from tests.flows import last_code

pytestmark = pytest.mark.browser

MALAKOFF_EMAIL = "jp.dupont-morel@example.org"
MALAKOFF_PASSWORD = "Nouveau-Depart-2026!"
MIEL_EMAIL = "f.ndiaye@example.org"
MIEL_PASSWORD = "Granit-Rose-Bastion-48!"
BROWSER_RULES = ("length", "lowercase", "uppercase", "digit", "special")


def newest_message(live, template: str, channel: str = "email") -> Message:
    session = live.app.extensions["idp"].database.session()
    try:
        message = session.scalar(
            select(Message).where(Message.template == template, Message.channel == channel)
            .order_by(Message.id.desc()).limit(1))
    finally:
        session.close()
    assert message is not None, f"no {channel} message {template!r} in the outbox"
    return message


def activation_link(live) -> str:
    body = newest_message(live, "activation").body_text
    found = re.search(r"https?://\S+/activate/\S+", body)
    assert found, body
    assert found[0].startswith(live.base_url), found[0]
    return found[0]


def one_h1(page) -> None:
    expect(page.locator("h1")).to_have_count(1)


def start_registration(page, live, tenant: str) -> None:
    page.goto(live.portals[tenant])
    one_h1(page)
    page.get_by_role("link", name="Créer mon compte").click()
    page.wait_for_url(f"{live.base_url}/{tenant}/register")
    one_h1(page)


def current_step(page, text: str) -> None:
    steps = page.get_by_role("list", name="Étapes")
    expect(steps.locator('[aria-current="step"]')).to_have_count(1)
    expect(steps.locator('[aria-current="step"]')).to_contain_text(text)


def sign_in_code(page, live, channel: str, name: str) -> None:
    """The code page: choose the channel, read the code from the outbox, enter it."""
    page.wait_for_url(f"{live.base_url}/*/login/code")
    one_h1(page)
    page.get_by_label("Par SMS" if channel == "sms" else "Par e-mail", exact=False).check()
    screenshot(page, f"{name}-code-choice")
    page.get_by_role("button", name="Recevoir mon code").click()
    code = page.get_by_label("Code à 6 chiffres")
    expect(code).to_be_visible()  # the code is in the outbox once this page is shown
    one_h1(page)
    code.fill(last_code(live.app, channel))
    page.get_by_role("button", name="Valider").click()


def accept_terms(page, name: str) -> None:
    """Miel asks its terms and communication preferences at the first sign-in (SPEC §3.2)."""
    page.wait_for_url("**/miel/login/terms")
    one_h1(page)
    expect(page.locator("h1")).to_have_text("Avant de continuer")
    page.get_by_label("J’accepte les mentions légales", exact=False).check()
    page.get_by_role("group", name="Vos relevés de remboursement").get_by_label("Par courrier").check()
    screenshot(page, f"{name}-terms")
    page.get_by_role("button", name="Continuer").click()


def choose_password(page, password: str, name: str) -> None:
    """Type the password key by key and watch the live checklist follow."""
    field = page.get_by_label("Nouveau mot de passe", exact=True)
    rules = page.locator("#password-rules")
    for code in BROWSER_RULES:
        expect(rules.locator(f'li[data-rule="{code}"]')).not_to_have_attribute("data-met", re.compile(".*"))
    field.press_sequentially("abc")
    expect(rules.locator('li[data-rule="lowercase"]')).to_have_attribute("data-met", "true")
    expect(rules.locator('li[data-rule="uppercase"]')).to_have_attribute("data-met", "false")
    expect(rules.locator('li[data-rule="length"]')).to_have_attribute("data-met", "false")
    screenshot(page, f"{name}-typing")
    field.fill("")
    field.press_sequentially(password)
    for code in BROWSER_RULES:
        expect(rules.locator(f'li[data-rule="{code}"]')).to_have_attribute("data-met", "true")
    expect(rules.locator('li[data-rule="uppercase"] .password-rule-status')).to_have_text("respecté")
    page.get_by_label("Confirmation du mot de passe").fill(password)
    screenshot(page, name)


def test_malakoff_member_registers_activates_and_signs_in(page, live_secure):
    live = live_secure
    portal = live.portals["malakoff"]
    start_registration(page, live, "malakoff")
    expect(page.locator("h1")).to_have_text("Créer mon compte Espace Client")
    page.get_by_label("Numéro d’adhérent").fill("23456789")
    page.get_by_label("Nom", exact=True).fill("Dupont Morel")
    page.get_by_label("Prénom").fill("Jean-Pierre")
    page.get_by_label("Date de naissance").fill("23/11/1949")
    page.get_by_label("Adresse e-mail", exact=True).fill(MALAKOFF_EMAIL)
    page.get_by_label("Confirmation de l’adresse e-mail").fill(MALAKOFF_EMAIL.replace("dupont", "dupond"))
    page.get_by_label("Téléphone mobile").fill("06 12 34 56 78")
    page.get_by_label("J’accepte les mentions légales", exact=False).check()
    screenshot(page, "register-malakoff-form")

    # A mismatched confirmation: the message sits next to the field and the field points at it.
    page.get_by_role("button", name="Créer mon compte").click()
    confirm = page.get_by_label("Confirmation de l’adresse e-mail")
    expect(confirm).to_have_attribute("aria-invalid", "true")
    described = confirm.get_attribute("aria-describedby").split()
    assert "email_confirm-error" in described
    error = page.locator("#email_confirm-error")
    expect(error).to_contain_text("Les deux adresses emails ne sont pas identiques.")
    expect(page.locator(".field-error").filter(has=confirm)).to_contain_text(
        "Les deux adresses emails ne sont pas identiques.")
    expect(page.get_by_role("alert")).to_contain_text("Le formulaire contient des erreurs")
    one_h1(page)
    screenshot(page, "register-malakoff-error")

    # Corrected: the other fields kept what was typed.
    expect(page.get_by_label("Numéro d’adhérent")).to_have_value("23456789")
    expect(page.get_by_label("J’accepte les mentions légales", exact=False)).to_be_checked()
    confirm.fill(MALAKOFF_EMAIL)
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page.locator("h1")).to_have_text("Consultez votre messagerie")
    expect(page.locator("main")).to_contain_text("spam")
    one_h1(page)
    screenshot(page, "register-malakoff-sent")

    page.goto(activation_link(live))
    expect(page.locator("h1")).to_have_text("Choisissez votre mot de passe")
    one_h1(page)
    choose_password(page, MALAKOFF_PASSWORD, "register-malakoff-password")
    page.get_by_role("button", name="Activer mon compte").click()
    page.wait_for_url(f"{live.base_url}/malakoff/welcome")
    expect(page.locator("h1")).to_have_text("Bienvenue sur votre Espace Client")
    one_h1(page)
    screenshot(page, "register-malakoff-welcome")

    page.goto(portal)
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(f"{live.base_url}/malakoff/login?interaction=*")
    one_h1(page)
    page.get_by_label("Adresse e-mail").fill(MALAKOFF_EMAIL)
    page.get_by_label("Mot de passe").fill(MALAKOFF_PASSWORD)
    page.get_by_role("button", name="Me connecter").click()
    sign_in_code(page, live, "email", "register-malakoff-sign-in")
    page.wait_for_url(f"{portal}/")
    one_h1(page)
    expect(page.locator(".greeting")).to_have_text("Bonjour Jean-Pierre")
    assert "23456789" in page.content()
    screenshot(page, "register-malakoff-portal")


def test_miel_member_registers_in_three_steps_and_signs_in(page, live_secure):
    live = live_secure
    portal = live.portals["miel"]
    start_registration(page, live, "miel")
    current_step(page, "Étape 1 : Identité")
    page.get_by_label("Numéro de sécurité sociale").fill("2 62 08 2A 004 036 07")
    page.get_by_label("Date de naissance").fill("30/08/1962")
    page.get_by_label("Département de naissance").select_option(value="2A")
    page.get_by_label("Nom", exact=True).fill("N'Diaye")
    page.get_by_label("Prénom").fill("Françoise")
    screenshot(page, "register-miel-identity")
    page.get_by_role("button", name="Continuer").click()

    page.wait_for_url(f"{live.base_url}/miel/register/contact")
    one_h1(page)
    current_step(page, "Étape 2 : Coordonnées")
    page.get_by_label("Adresse e-mail", exact=True).fill(MIEL_EMAIL)
    page.get_by_label("Confirmation de l’adresse e-mail").fill(MIEL_EMAIL)
    page.get_by_label("Téléphone mobile").fill("07 81 22 33 44")
    # Miel asks the terms at the first sign-in, not here.
    expect(page.get_by_label("J’accepte les mentions légales", exact=False)).to_have_count(0)
    screenshot(page, "register-miel-contact")
    page.get_by_role("button", name="Recevoir le code par SMS").click()

    page.wait_for_url(f"{live.base_url}/miel/register/code")
    one_h1(page)
    current_step(page, "Étape 3 : Code SMS")
    sms = newest_message(live, "registration_code", "sms")
    assert sms.recipient == "+33781223344"
    page.get_by_label("Code à 6 chiffres").fill(re.search(r"\b\d{6}\b", sms.body_text)[0])
    screenshot(page, "register-miel-code")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("h1")).to_have_text("Consultez votre messagerie")
    expect(page.locator("main")).to_contain_text("spam")
    one_h1(page)
    screenshot(page, "register-miel-sent")

    identifier = newest_message(live, "identifier")
    assert identifier.recipient == MIEL_EMAIL and "76543210" in identifier.body_text
    page.goto(activation_link(live))
    expect(page.locator("h1")).to_have_text("Choisissez votre mot de passe")
    one_h1(page)
    page.get_by_label("Date de naissance").fill("30/08/1962")
    choose_password(page, MIEL_PASSWORD, "register-miel-password")
    page.get_by_role("button", name="Activer mon compte").click()
    page.wait_for_url(f"{live.base_url}/miel/welcome")
    expect(page.locator("h1")).to_have_text("Bienvenue sur votre Espace Affilié")
    one_h1(page)
    screenshot(page, "register-miel-welcome")

    page.goto(portal)
    page.get_by_role("link", name="Se connecter").or_(
        page.get_by_role("button", name="Se connecter")).first.click()
    page.wait_for_url(f"{live.base_url}/miel/login?interaction=*")
    one_h1(page)
    page.get_by_label("Numéro d’adhérent").fill("76543210")
    page.get_by_label("Mot de passe").fill(MIEL_PASSWORD)
    page.get_by_role("button", name="Me connecter").click()
    sign_in_code(page, live, "sms", "register-miel-sign-in")
    accept_terms(page, "register-miel-sign-in")
    page.wait_for_url(f"{portal}/")
    one_h1(page)
    expect(page.locator(".greeting")).to_have_text("Bonjour Françoise")
    assert "76543210" in page.content()
    session = live.app.extensions["idp"].database.session()
    try:
        account = session.scalar(select(Account).where(Account.tenant == "miel",
                                                       Account.member_number == "76543210"))
        assert account.preferences == {"statements": "post", "letters": "email", "marketing": False}
        assert account.terms_version is not None
    finally:
        session.close()
    screenshot(page, "register-miel-portal")

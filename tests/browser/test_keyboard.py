"""Sign-in and sign-up with the keyboard alone (Tab, Enter, Space, typing), focus always visible."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.journeys import code_in, demo_account, link_in

pytestmark = pytest.mark.browser

MAX_TABS = 40
# The focused element shows an outline of at least 2 px (idp.css :focus-visible).
FOCUS_SHOWN = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  return element !== document.body && style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
}"""


def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until ``target`` has the focus; every stop on the way shows where the focus is."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.outerHTML")
        assert page.evaluate(FOCUS_SHOWN), f"no visible focus on {focused}"
        if target.evaluate("(element) => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never got the focus with Tab")


def type_into(page: Page, target: Locator, text: str) -> None:
    tab_to(page, target)
    page.keyboard.type(text)


def test_sign_in_with_the_keyboard_only(browse):
    account = demo_account("malakoff")
    member = browse("malakoff")
    page = member.page
    member.opens_portal()
    tab_to(page, page.get_by_role("link", name="Se connecter", exact=True))
    page.keyboard.press("Enter")
    member.is_asked_password()
    # The identifier field has the focus when the page opens.
    expect(page.get_by_label("Adresse e-mail", exact=True)).to_be_focused()
    page.keyboard.type(account.identifier)
    type_into(page, page.get_by_label("Mot de passe", exact=True), "wrong-password")
    page.keyboard.press("Enter")
    member.sees_errors("sign-in-error", "Identifiant ou mot de passe incorrect.")
    type_into(page, page.get_by_label("Mot de passe", exact=True), account.password)
    page.keyboard.press("Enter")

    page.wait_for_url(f"{member.provider}/login/code")
    tab_to(page, page.get_by_label("Par e-mail", exact=False))
    page.keyboard.press("ArrowDown")  # the other channel: SMS
    expect(page.get_by_label("Par SMS", exact=False)).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Recevoir mon code"))
    page.keyboard.press("Enter")
    expect(page.get_by_label("Code à 6 chiffres")).to_be_focused()
    page.keyboard.type(code_in(member.live, "otp_code", "sms"))
    tab_to(page, page.get_by_label("Se souvenir de moi", exact=False))
    page.keyboard.press("Space")
    expect(page.get_by_label("Se souvenir de moi", exact=False)).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Valider"))
    page.keyboard.press("Enter")
    member.is_back_at_portal(account.given_name)


def test_sign_up_with_the_keyboard_only(browse):
    member = browse("malakoff")
    page = member.page
    member.opens_portal()
    tab_to(page, page.get_by_role("link", name="Créer mon compte", exact=True))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{member.provider}/register")
    for label, text in [("Numéro d’adhérent", "23456789"), ("Nom", "Dupont-Morel"), ("Prénom", "Jean-Pierre"),
                        ("Date de naissance", "23/11/1949"), ("Adresse e-mail", "jp@example.org"),
                        ("Confirmation de l’adresse e-mail", "jp@example.org"),
                        ("Téléphone mobile", "06 12 34 56 78")]:
        type_into(page, page.get_by_label(label, exact=True), text)
    page.keyboard.press("Enter")  # the terms are not accepted yet
    member.sees_errors("register-error", "Vous devez accepter les mentions légales")
    terms = page.get_by_label("J’accepte les mentions légales", exact=False)
    tab_to(page, terms)
    page.keyboard.press("Space")
    expect(terms).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Recevoir le code par SMS"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{member.provider}/register/code")
    # The code field has the focus when the page opens.
    expect(page.get_by_label("Code à 6 chiffres")).to_be_focused()
    page.keyboard.type(code_in(member.live, "registration_code", "sms"))
    page.keyboard.press("Enter")
    member.sees("register-sent", "Consultez votre messagerie")

    page.goto(link_in(member.live, "activation", "/activate/"))
    type_into(page, page.get_by_label("Nouveau mot de passe", exact=True), "Clavier-Seul-2026!")
    type_into(page, page.get_by_label("Confirmation du mot de passe"), "Clavier-Seul-2026!")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{member.provider}/welcome")
    member.sees("welcome", "Bienvenue sur votre Espace Client")

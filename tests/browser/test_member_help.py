"""Help members see in the browser: the advisers' contacts at the foot of each page, where the
member number is on the card, how to read the NIR, the terms' page (axe-core on each)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.journeys import demo_account

pytestmark = pytest.mark.browser


def test_miel_sign_in_shows_where_the_member_number_is_and_how_to_reach_the_advisers(browse):
    member = browse("miel")
    member.page.goto(f"{member.provider}/login")
    help_ = member.page.locator("details.help")
    card = help_.get_by_role("img", name="Dessin d’une carte de tiers payant", exact=False)
    expect(card).to_be_hidden()
    help_.get_by_text("Où trouver mon numéro d’adhérent", exact=False).click()
    expect(card).to_be_visible()
    expect(help_).to_contain_text("juste sous votre nom")
    support = member.page.get_by_role("region", name="Besoin d’aide\u00a0? Contactez nos conseillers")
    expect(support.get_by_role("link", name="01 99 00 56 78")).to_have_attribute("href", "tel:0199005678")
    expect(support).to_contain_text("assistance@miel.example.org")
    expect(member.page.get_by_role("link", name="Activer mon compte")).to_be_visible()
    member.sees("login-card-help", "Connexion à votre Espace Affilié")
    member.page.set_viewport_size({"width": 360, "height": 800})
    member.sees("login-card-help-phone")


def test_miel_registration_explains_the_nir(browse):
    member = browse("miel")
    member.page.goto(f"{member.provider}/register")
    member.page.get_by_text("Comment lire mon numéro de sécurité sociale").click()
    expect(member.page.locator(".nir-parts li")).to_have_count(7)
    expect(member.page.locator("#birth_department")).not_to_have_attribute("type", "")
    member.sees("register-nir-help")


def test_malakoff_registration_leads_to_sign_in_advisers_and_terms(browse):
    member = browse("malakoff")
    member.page.goto(f"{member.provider}/register")
    expect(member.page.get_by_role("link", name="me connecter")).to_have_attribute("href", "/malakoff/login")
    advisers = member.page.get_by_text("Vous ne connaissez pas votre numéro d’adhérent", exact=False)
    expect(advisers).to_be_visible()
    member.sees("register-links")
    # Buttons take the page's font, not the browser's.
    fonts = member.page.evaluate("""() => [getComputedStyle(document.body).fontFamily,
        getComputedStyle(document.querySelector('button')).fontFamily,
        getComputedStyle(document.querySelector('input[type=text]')).fontFamily]""")
    assert fonts[0] == fonts[1] == fonts[2], fonts
    with member.page.expect_popup() as opened:
        member.page.get_by_role("link", name="Lire les mentions légales", exact=False).click()
    terms = opened.value
    expect(terms.locator("h1")).to_have_text("Mentions légales et conditions générales d’utilisation")
    member.check(terms, "malakoff-terms-page")
    terms.close()


def test_the_demo_s_account_and_welcome_pages_lead_back_to_the_portal(browse):
    account = demo_account("miel")
    member = browse("miel")
    member.signs_in_as(account, "email")
    member.opens_account(account.given_name)
    expect(member.page.get_by_role("link", name="Me déconnecter")).to_be_visible()
    member.click("link", "Aller à mon Espace Affilié")
    member.is_back_at_portal(account.given_name)
    member.page.goto(f"{member.provider}/welcome")
    onward = member.page.get_by_role("link", name="Me connecter")
    expect(onward).to_have_attribute("href", f"{member.portal}/")

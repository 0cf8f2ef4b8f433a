"""What members see beyond the forms: how to reach the advisers, the terms they accept, the
brands' wording, times in words, and a way onward from every dead end."""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime

import pytest
from sqlalchemy import select

from idp import create_app
from idp.accounts.models import Account
from idp.channels.models import Message
from idp.config import ConfigError
from idp.mfa.models import TrustedDevice
from idp.registry.models import Member
from idp.tenancy import load_tenants
from tests.factories import TENANTS
from tests.flows import Flow, csrf_token

NBSP = "\u00a0"
# The advisers' phone and hours, as pages and emails write them: no line ends within "8 h 30" or
# within the number (a narrow phone screen).
PHONE_SHOWN = f"01{NBSP}99{NBSP}00{NBSP}12{NBSP}34"
HOURS = f"du lundi au vendredi, de 8{NBSP}h{NBSP}30 à 18{NBSP}h"
SUPPORT = {"malakoff": ("01 99 00 12 34", "conseillers@malakoff.example.org", "92247 Malakoff Cedex"),
           "miel": ("01 99 00 56 78", "assistance@miel.example.org", "69003 Lyon Cedex")}


def _text(response) -> str:
    return response.data.decode()


def _shows_support(html: str, tenant: str) -> bool:
    phone, email, town = SUPPORT[tenant]
    return (f"Besoin d’aide{NBSP}? Contactez nos conseillers" in html
            and f'href="tel:{phone.replace(" ", "")}">{phone.replace(" ", NBSP)}</a>' in html
            and f"mailto:{email}" in html and town in html and HOURS in html)


@pytest.mark.parametrize(("tenant", "path"), [
    ("malakoff", "/login"), ("miel", "/login"), ("malakoff", "/register"), ("miel", "/register"),
    ("malakoff", "/forgot-password"), ("miel", "/forgot-identifier"),
    ("malakoff", "/reset-password/not-a-token"), ("malakoff", "/activate/expired"),
    ("miel", "/no-such-page"), ("malakoff", "/register/sent"),
])
def test_sign_in_registration_recovery_and_error_pages_say_how_to_reach_the_advisers(client, tenant, path):
    html = _text(client.get(f"/{tenant}{path}"))
    assert _shows_support(html, tenant), html[-3000:]
    assert "UTC" not in html


def test_the_advisers_hours_are_in_the_page_s_language(client):
    html = _text(client.get("/miel/login?lang=en"))
    assert "Need help? Contact our advisers" in html
    assert f"Monday to Friday, 8:30{NBSP}am to 6{NBSP}pm" in html


def test_every_email_ends_with_the_advisers_phone_email_and_address(client, make, app, db):
    account = make.account("malakoff")
    page = client.get("/malakoff/forgot-password")
    client.post("/malakoff/forgot-password", data={"identifier": account.email,
                                                   "csrf_token": csrf_token(page.data)})
    message = db.scalar(select(Message).where(Message.template == "password_reset"))
    assert message is not None
    footer = message.body_text.split(f"Besoin d’aide{NBSP}? Nos conseillers vous répondent{NBSP}:")[1]
    assert f"par téléphone au {PHONE_SHOWN}, {HOURS}" in footer
    assert "conseillers@malakoff.example.org" in footer
    assert "Malakoff Humanis — Service adhérents" in footer and "92247 Malakoff Cedex" in footer


def test_the_support_section_is_checked_and_production_refuses_a_placeholder_address(tmp_path, settings):
    bad = tmp_path / "bad"
    shutil.copytree(TENANTS, bad)
    miel = bad / "miel.toml"
    text = miel.read_text(encoding="utf-8")
    miel.write_text(text.replace('phone = "01 99 00 56 78"', 'phone = "call us"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"miel\.toml: \[support\] phone"):
        load_tenants(bad, "https://id.example.org")
    miel.write_text(re.sub(r"(?m)^hours = .*$", 'hours = { fr = "tous les jours" }', text), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"miel\.toml: \[support\] hours must give the opening hours"):
        load_tenants(bad, "https://id.example.org")
    # The shipped address is a placeholder: fine in development, refused in production.
    good = tmp_path / "good"
    shutil.copytree(TENANTS, good)
    for path in good.glob("*.toml"):
        path.write_text(path.read_text(encoding="utf-8").replace(
            'email = "accessibilite@', 'email = "accessibilite@mutuelle-ouest.fr" # '), encoding="utf-8")
    assert load_tenants(good, "https://id.example.org")["miel"].support.email == "assistance@miel.example.org"
    with pytest.raises(ConfigError, match=r"\[support\] email must be the brand's own address in production"):
        load_tenants(good, "https://id.example.org", production=True)


# -- registration and terms ------------------------------------------------------------------------


def test_malakoff_registration_leads_to_sign_in_to_the_advisers_and_to_the_terms(client):
    html = _text(client.get("/malakoff/register"))
    assert f"J’ai déjà un compte client{NBSP}:" in html and 'href="/malakoff/login"' in html
    assert (f"Vous ne connaissez pas votre numéro d’adhérent{NBSP}? Contactez nos conseillers au "
            f"{PHONE_SHOWN}, {HOURS}.") in html
    assert "Retour à la connexion" in html
    assert 'href="/malakoff/terms/2026-01"' in html


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_each_terms_version_is_a_page(client, tenant):
    page = client.get(f"/{tenant}/terms/2026-01")
    assert page.status_code == 200
    html = _text(page)
    assert "<h1>Mentions légales et conditions générales d’utilisation</h1>" in html
    assert "Version 2026-01, en vigueur." in html and '<div class="legal-text" lang="fr">' in html
    assert "Conditions générales d’utilisation</h2>" in html
    for unknown in ("1999-01", "..%2F..%2Fbase%2Flayout", "a" * 40):
        assert client.get(f"/{tenant}/terms/{unknown}").status_code == 404


def test_miel_s_first_sign_in_terms_page_links_to_the_text(make, client, db):
    account = make.account("miel", preferences=None)
    stored = db.get(Account, account.id)
    stored.terms_version = None
    db.commit()
    flow = Flow(client, "miel", make.client("miel"), account)
    page = client.get(flow.login(flow.authorize()).headers["Location"])
    assert page.status_code == 200 and "Avant de continuer" in _text(page)
    assert 'href="/miel/terms/2026-01"' in _text(page)


@pytest.mark.parametrize(("tenant", "path", "step"), [
    ("malakoff", "/register", "Vos informations"), ("miel", "/register", "Identité")])
def test_the_current_step_keeps_its_state_on_the_line_of_its_name(client, tenant, path, step):
    html = _text(client.get(f"/{tenant}{path}"))
    assert f'{step}{NBSP}<span class="step-state">(en cours)</span></span>' in html


# -- Miel's wording --------------------------------------------------------------------------------


def test_miel_sign_in_says_new_here_and_where_the_member_number_is(client):
    html = _text(client.get("/miel/login"))
    assert f"Nouveau venu{NBSP}?" in html and ">Activer mon compte</a>" in html
    assert "Pas encore de compte" not in html
    assert f"<summary>Où trouver mon numéro d’adhérent{NBSP}?</summary>" in html
    # The drawing has a text alternative, and the words say where the number is.
    assert re.search(r'<svg class="member-card"[^>]*role="img"[^>]*aria-labelledby="member-card-title"', html)
    assert "juste sous votre nom" in html
    malakoff = _text(client.get("/malakoff/login"))
    assert "Pas encore de compte" in malakoff and "member-card" not in malakoff
    assert "si vous ne l’avez pas encore remplacé par votre adresse e-mail" in malakoff


def test_miel_registration_explains_the_nir(client):
    html = _text(client.get("/miel/register"))
    assert f"Comment lire mon numéro de sécurité sociale{NBSP}?" in html
    for part in ("pour le sexe", "l’année de naissance", "le mois de naissance",
                 "le département de naissance", "la commune de naissance", "numéro d’ordre",
                 "clé de contrôle"):
        assert part in html, part
    assert 'type=""' not in html and '<select id="birth_department"' in html


@pytest.fixture
def miel_member(db):
    db.add(Member(tenant="miel", member_number="76543210", nir="262082A00403607",
                  last_name="N'DIAYE", first_name="Françoise", birth_date=date(1962, 8, 30),
                  role="principal", kind="health", status="active", mobile="+33781223344"))
    db.commit()


def test_miel_back_from_step_two_keeps_what_was_typed(client, miel_member):
    page = client.get("/miel/register")
    typed = {"nir": "2 62 08 2A 004 036 07", "birth_date": "30/08/1962", "birth_department": "2A",
             "last_name": "Ndiaye", "first_name": "Françoise"}
    step1 = {**typed, "csrf_token": csrf_token(page.data)}
    assert client.post("/miel/register", data=step1).status_code == 303
    contact = client.get("/miel/register/contact")
    # The way back is a button of the form: what was typed here goes back with it.
    assert '<button type="submit" name="back" value="1"' in _text(contact)
    back = client.post("/miel/register/contact", data={
        "email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org", "mobile": "",
        "back": "1", "csrf_token": csrf_token(contact.data)})
    assert back.status_code == 303 and back.headers["Location"] == "/miel/register"
    back = _text(client.get("/miel/register"))
    for value in ("2 62 08 2A 004 036 07", "30/08/1962", "Ndiaye", "Françoise"):
        assert f'value="{value}"' in back, value
    assert '<option selected value="2A">' in back
    # And forward again: step 2 has its contacts back too.
    assert client.post("/miel/register", data=step1).status_code == 303
    again = _text(client.get("/miel/register/contact"))
    assert 'value="f.ndiaye@example.org"' in again


def test_miel_confirmation_announces_two_emails(client):
    with client.session_transaction() as session:
        session["registered"] = "activation_sent"
    html = _text(client.get("/miel/register/sent"))
    assert f"vous allez recevoir deux e-mails{NBSP}:" in html
    assert "votre identifiant de connexion, votre numéro d’adhérent" in html
    assert "le lien pour activer votre compte" in html
    malakoff = _text(client.get("/malakoff/register/sent"))
    assert "deux e-mails" not in malakoff and "un e-mail pour activer votre compte" in malakoff


# -- the sign-in and code pages --------------------------------------------------------------------


def test_the_sign_in_page_opens_with_its_form_and_states_its_limit_after_it(flow):
    page, _interaction = flow.sign_in_page(flow.authorize())
    html = _text(page)
    assert html.index("<form") < html.index("il vous reste 30\u00a0minutes")


def test_the_code_page_says_sms_in_capitals_and_explains_remember_me(make, client, app):
    account = make.account("miel")
    flow = Flow(client, "miel", make.client("miel"), account)
    flow.give_password()
    choose = client.get("/miel/login/code")
    client.post("/miel/login/code", data={"channel": "sms", "csrf_token": csrf_token(choose.data)})
    html = _text(client.get("/miel/login/code/verify"))
    assert "à 6\u00a0chiffres par SMS au" in html and "par sms" not in html
    assert 'aria-describedby="remember-hint"' in html
    for words in ("dans ce navigateur seulement", "navigation privée", "effacez les cookies"):
        assert words in html


# -- times and waits in words ----------------------------------------------------------------------


def test_times_are_in_paris_and_in_words(flow, db):
    flow.login(flow.authorize(), remember=True)
    device = db.scalar(select(TrustedDevice))
    device.last_used_at = datetime(2026, 12, 3, 8, 52)  # stored in UTC
    db.commit()
    html = _text(flow.http.get("/malakoff/account"))
    assert f"Dernière utilisation{NBSP}: le 3 décembre 2026 à 9{NBSP}h{NBSP}52" in html
    english = _text(flow.http.get("/malakoff/account?lang=en"))
    assert "Last used: 3 December 2026 at 9:52" in english


# -- dead ends -------------------------------------------------------------------------------------


def test_an_expired_reset_link_leads_to_a_new_one_and_to_sign_in(client):
    html = _text(client.get("/malakoff/reset-password/expired-token"))
    assert 'href="/malakoff/forgot-password"' in html and 'href="/malakoff/login"' in html


def test_asking_a_new_activation_link_says_what_to_do_when_the_account_is_active(client, make, db):
    active = make.account("malakoff")
    answers = []
    for email in (active.email, "nobody@example.org", active.email):
        page = client.get("/malakoff/activate/expired")
        answers.append(_text(client.post("/malakoff/activate/expired", data={
            "email": email, "csrf_token": csrf_token(page.data)})))
    # The same words whether an account exists or not, and a way to sign in or reset.
    strip = re.compile(r'name="csrf_token"[^>]*>|data-deadline="\d+"|data-deadline-csrf="[^"]*"')
    assert strip.sub("", answers[0]) == strip.sub("", answers[1])
    assert f"Votre compte est déjà activé{NBSP}?" in answers[0]
    assert 'href="/malakoff/login"' in answers[0] and 'href="/malakoff/forgot-password"' in answers[0]
    # The active account's owner hears it by email (once, however often it is asked), with the
    # way to sign in; an address without an account gets nothing.
    sent = db.scalars(select(Message).where(Message.template == "activation_not_needed")).all()
    assert [message.recipient for message in sent] == [active.email]
    assert "est déjà activé" in sent[0].subject and "http://localhost/malakoff/login" in sent[0].body_text
    assert "http://localhost/malakoff/forgot-password" in sent[0].body_text


def test_a_deleted_account_page_leads_to_registration(client):
    html = _text(client.get("/malakoff/account/deleted"))
    assert 'href="/malakoff/register"' in html and "Créer un nouveau compte" in html


def test_the_account_page_signs_out_and_speaks_neutrally(flow):
    flow.sign_in()
    html = _text(flow.http.get("/malakoff/account"))
    # What it says holds at every visit, not only the first after signing in.
    assert "Vous êtes connecté" not in html and "Connexion réussie" not in html
    assert "Bienvenue sur la page de votre compte Espace Client." in html
    assert 'href="/malakoff/logout"' in html
    assert flow.http.get("/malakoff/logout").status_code == 303


def test_welcome_leads_to_the_portal(client, settings, tmp_path):
    assert 'href="/malakoff/login"' in _text(client.get("/malakoff/welcome"))
    tenants = tmp_path / "tenants"
    shutil.copytree(TENANTS, tenants)
    path = tenants / "malakoff.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        '# portal_url = "', 'portal_url = "'), encoding="utf-8")
    app = create_app({**settings, "tenants_dir": str(tenants)})
    html = _text(app.test_client().get("/malakoff/welcome"))
    assert 'href="https://espace-client.malakoff.example.org/"' in html
    app.extensions["idp"].database.engine.dispose()


# -- forms -----------------------------------------------------------------------------------------


def test_the_error_summary_follows_the_form_s_order(client):
    page = client.get("/malakoff/register")
    refused = _text(client.post("/malakoff/register", data={"csrf_token": csrf_token(page.data)}))
    summary = re.search(r'<ul class="error-summary-list">(.*?)</ul>', refused, re.S)[1]
    targets = re.findall(r'href="#(\w+)"', summary)
    assert targets == ["member_number", "last_name", "first_name", "birth_date", "email",
                       "email_confirm", "mobile", "accept_terms"], targets


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
@pytest.mark.parametrize("typed", [{}, {"identifier": "jeanne@example.org"}, {"password": "secret"}],
                         ids=["nothing", "no-password", "no-identifier"])
def test_a_sign_in_form_sent_incomplete_is_refused_as_every_form_is(client, tenant, typed):
    page = client.get(f"/{tenant}/login")
    refused = client.post(f"/{tenant}/login", data={**typed, "csrf_token": csrf_token(page.data)})
    # 400, as the other forms: the page again, what is missing said on its field.
    assert refused.status_code == 400
    assert 'aria-invalid="true"' in _text(refused) and 'name="password"' in _text(refused)


def test_buttons_and_inputs_use_the_page_s_font(client):
    with client.get("/static/idp.css") as response:
        css = response.data.decode()
    assert "button, input, select, textarea { font: inherit; }" in css


def test_after_an_email_change_the_member_hears_it_is_the_sign_in_identifier(flow, make, client):
    flow.sign_in()
    assert "C’est désormais votre identifiant de connexion" in _text(
        flow.http.get("/malakoff/account?changed=email"))
    miel = Flow(client, "miel", make.client("miel"), make.account("miel"))
    miel.sign_in()
    html = _text(client.get("/miel/account?changed=email"))
    assert "Votre adresse e-mail est enregistrée" in html and "identifiant de connexion" not in html



def test_a_member_who_lost_the_address_is_told_how_to_reach_the_advisers(client, make):
    account = make.account("malakoff")
    page = client.get("/malakoff/forgot-identifier")
    sent = _text(client.post("/malakoff/forgot-identifier", follow_redirects=True, data={
        "member_number": account.member_number, "csrf_token": csrf_token(page.data)}))
    assert (f"Vous n’avez plus accès à cette adresse{NBSP}? Contactez nos conseillers au {PHONE_SHOWN}, "
            f"{HOURS}.") in sent

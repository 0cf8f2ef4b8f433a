"""Messages that cannot be abused: SMS only to the tenant's countries and within its hourly
budget; pages that email addresses the requester need not own are capped per client
address, with the same answer past the cap; a reset link dies when the account's email
changes (README, "Rate limits"; SPEC §9)."""

from __future__ import annotations

import re
import shutil
from datetime import date

import pytest
from sqlalchemy import func, select

from idp import create_app
from idp.accounts.models import Account
from idp.channels.models import Message
from idp.registry.models import Member
from tests.conftest import _reset
from tests.factories import TENANTS, Factories
from tests.flows import Flow, csrf_token, last_code, sms_code_step

NIR = "262082A00403607"


def _count(db, template: str, channel: str | None = None) -> int:
    db.expire_all()
    query = select(func.count()).select_from(Message).where(Message.template == template)
    if channel:
        query = query.where(Message.channel == channel)
    return db.scalar(query)


def _at(client, address: str):
    client.environ_base["REMOTE_ADDR"] = address
    return client


# -- where SMS may go ------------------------------------------------------------------------------


@pytest.fixture
def miel_registry(db):
    db.add(Member(tenant="miel", member_number="76543210", nir=NIR, last_name="N'DIAYE",
                  first_name="Françoise", birth_date=date(1962, 8, 30), role="principal",
                  kind="health", status="active", mobile="+33781223344"))
    db.commit()


def _miel_identity(client):
    page = client.get("/miel/register")
    answer = client.post("/miel/register", data={
        "nir": NIR, "birth_date": "30/08/1962", "birth_department": "2A", "last_name": "Ndiaye",
        "first_name": "francoise", "csrf_token": csrf_token(page.data)})
    assert answer.status_code == 303


def _miel_contact(client, mobile: str):
    page = client.get("/miel/register/contact")
    return client.post("/miel/register/contact", data={
        "email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org",
        "mobile": mobile, "csrf_token": csrf_token(page.data)})


@pytest.mark.parametrize("mobile", [
    "+49 151 23456789",   # Germany
    "+44 7400 123456",    # the United Kingdom
    "+269 321 23 45",     # the Comoros (+269), which is not Mayotte (+262 639)
    "0049 151 23456789",
])
def test_miel_registration_sends_no_sms_abroad_and_says_so_at_the_field(
        client, db, miel_registry, mobile):
    _miel_identity(client)
    refused = _miel_contact(client, mobile)
    assert refused.status_code == 400
    text = refused.data.decode()
    assert "Nous ne pouvons pas envoyer de SMS vers ce numéro." in text
    assert "Mayotte" in text and "Guadeloupe" in text  # the countries accepted are named
    assert 'aria-invalid="true"' in text
    assert _count(db, "registration_code") == 0


@pytest.mark.parametrize(("mobile", "e164"), [
    ("06 12 34 56 78", "+33612345678"),
    ("+262 639 01 23 45", "+262639012345"),  # Mayotte
    ("+262 692 12 34 56", "+262692123456"),  # La Réunion
    ("+590 690 00 12 34", "+590690001234"),  # Guadeloupe
    ("+594 694 20 12 34", "+594694201234"),  # French Guiana
    ("+596 696 20 12 34", "+596696201234"),  # Martinique
    ("+687 75 12 34", "+687751234"),         # New Caledonia
    ("+689 87 12 34 56", "+68987123456"),    # French Polynesia
])
def test_france_and_its_overseas_departments_receive_the_code(client, db, miel_registry, mobile, e164):
    _miel_identity(client)
    assert _miel_contact(client, mobile).status_code == 303
    db.expire_all()
    assert db.scalar(select(Message.recipient).where(Message.template == "registration_code")) == e164


def test_malakoff_registration_refuses_a_mobile_abroad(client, db):
    db.add(Member(tenant="malakoff", member_number="23456789", last_name="DUPONT",
                  first_name="Jean", birth_date=date(1949, 11, 23), role="principal",
                  kind="health", status="active"))
    db.commit()
    page = client.get("/malakoff/register")
    refused = client.post("/malakoff/register", data={
        "member_number": "23456789", "last_name": "Dupont", "first_name": "Jean",
        "birth_date": "23/11/1949", "email": "jean@example.org", "email_confirm": "jean@example.org",
        "mobile": "+49 151 23456789", "accept_terms": "y", "csrf_token": csrf_token(page.data)})
    assert refused.status_code == 400
    assert "Nous ne pouvons pas envoyer de SMS vers ce numéro.".encode() in refused.data
    assert db.scalar(select(func.count()).select_from(Account)) == 0
    assert _count(db, "activation") == 0


def test_the_countries_are_named_in_the_language_of_the_page(client, db, miel_registry):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _miel_identity(client)
    refused = _miel_contact(client, "+49 151 23456789")
    assert b"We cannot send text messages to this number." in refused.data
    assert b"French Guiana" in refused.data


def test_a_number_abroad_already_on_an_account_gets_no_sign_in_sms(client, db, make):
    account = make.account("malakoff", phone_number="+4915123456789")
    flow = Flow(client, "malakoff", make.client(), account)
    assert flow.give_password(prompt=None).headers["Location"].endswith("/malakoff/login/code")
    page = client.get("/malakoff/login/code")
    refused = client.post("/malakoff/login/code", data={"channel": "sms",
                                                        "csrf_token": csrf_token(page.data)})
    assert refused.status_code == 400
    assert b"Choisissez de recevoir le code par e-mail" in refused.data
    assert b'href="/malakoff/login/code"' in refused.data  # back to the choice of channel
    assert _count(db, "otp_code", "sms") == 0
    by_email = client.post("/malakoff/login/code", data={"channel": "email",
                                                         "csrf_token": csrf_token(page.data)})
    assert by_email.status_code == 303


def test_a_new_mobile_abroad_is_refused_on_the_account_page(flow, db):
    flow.code()
    page = flow.http.get("/malakoff/account/mobile")
    refused = flow.http.post("/malakoff/account/mobile", data={
        "current_password": "Correct-Horse-7!", "mobile": "+49 151 23456789",
        "csrf_token": csrf_token(page.data)})
    assert refused.status_code == 400
    assert "Nous ne pouvons pas envoyer de SMS vers ce numéro".encode() in refused.data
    assert _count(db, "mobile_change") == 0


# -- the tenant's SMS budget ------------------------------------------------------------------------


@pytest.fixture
def small_budget(settings, tmp_path):
    """The provider with Miel allowed 2 SMS an hour, in its tenant file."""
    tenants = tmp_path / "tenants"
    shutil.copytree(TENANTS, tenants)
    miel = tenants / "miel.toml"
    miel.write_text(re.sub(r"budget_per_hour = \d+", "budget_per_hour = 2",
                           miel.read_text(encoding="utf-8")), encoding="utf-8")
    app = create_app({**settings, "tenants_dir": str(tenants)})
    app.config["TESTING"] = True
    yield app
    _reset(app)


def test_the_tenants_sms_budget_is_shared_by_everyone_and_refuses_with_retry_after(small_budget):
    app = small_budget
    db = app.extensions["idp"].database.session()
    db.add(Member(tenant="miel", member_number="76543210", nir=NIR, last_name="N'DIAYE",
                  first_name="Françoise", birth_date=date(1962, 8, 30), role="principal",
                  kind="health", status="active", mobile="+33781223344"))
    db.commit()
    # Three browsers at three addresses, three numbers: only the tenant's budget is shared.
    answers = []
    for n in range(3):
        browser = _at(app.test_client(), f"198.51.100.{n + 1}")
        _miel_identity(browser)
        answers.append(_miel_contact(browser, f"07 81 22 33 4{n}"))
    assert [a.status_code for a in answers] == [303, 303, 429]
    refused = answers[2]
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert "Trop de SMS ont été envoyés ces dernières minutes".encode() in refused.data
    assert _count(db, "registration_code", "sms") == 2
    db.close()


def _send_sign_in_code(app, rp, account, channel: str, address: str):
    flow = Flow(_at(app.test_client(), address), "miel", rp, account)
    assert flow.give_password(prompt=None).headers["Location"].endswith("/miel/login/code")
    page = flow.http.get("/miel/login/code")
    return flow.http.post("/miel/login/code", data={"channel": channel,
                                                    "csrf_token": csrf_token(page.data)})


def test_sign_in_codes_by_sms_share_the_budget_and_email_codes_stay_open(small_budget):
    app = small_budget
    db = app.extensions["idp"].database.session()
    make = Factories(app, db)
    rp = make.client("miel")
    accounts = [make.account("miel", email=f"adherent{n}@example.org",
                             phone_number=f"+3378122334{n}") for n in range(3)]
    sent = [_send_sign_in_code(app, rp, account, "sms", f"198.51.100.{n + 1}")
            for n, account in enumerate(accounts)]
    assert [answer.status_code for answer in sent] == [303, 303, 429]
    assert "Retry-After" in sent[2].headers
    assert _count(db, "otp_code", "sms") == 2
    by_email = _send_sign_in_code(app, rp, accounts[2], "email", "198.51.100.3")
    assert by_email.status_code == 303
    assert _count(db, "otp_code", "email") == 1
    db.close()


# -- pages that email someone: capped per client address -------------------------------------------


def _forgot_password(client, identifier):
    page = client.get("/malakoff/forgot-password")
    return client.post("/malakoff/forgot-password",
                       data={"identifier": identifier, "csrf_token": csrf_token(page.data)})


def _body(answer) -> bytes:
    """The page without its CSRF tokens (signed with the time, so they differ) and without the
    seconds its session has left (which a slow machine sees go by between two answers)."""
    return re.sub(rb'(csrf[a-z_-]*="|name="csrf_token" type="hidden" value="|data-deadline=")'
                  rb'[^"]*"', rb"\1", answer.data)


def test_forgot_password_sends_at_most_ten_an_hour_from_one_address(client, db, make):
    accounts = [make.account("malakoff") for _ in range(12)]
    _at(client, "203.0.113.7")
    answers = [_forgot_password(client, account.email) for account in accounts]
    # Past the cap the answer is the same: the same page.
    assert {(a.status_code, a.headers["Location"]) for a in answers} == {
        (303, "/malakoff/forgot-password/sent")}
    assert _count(db, "password_reset") == 10
    # Another address is not held back by this one.
    _forgot_password(_at(client, "203.0.113.8"), accounts[11].email)
    assert _count(db, "password_reset") == 11


def _forgot_identifier(client, number):
    page = client.get("/malakoff/forgot-identifier")
    return client.post("/malakoff/forgot-identifier",
                       data={"member_number": number, "csrf_token": csrf_token(page.data)})


def test_forgot_identifier_sends_at_most_ten_an_hour_from_one_address(client, db, make):
    accounts = [make.account("malakoff") for _ in range(12)]
    _at(client, "203.0.113.7")
    answers = [_forgot_identifier(client, account.member_number) for account in accounts]
    assert {(a.status_code, a.headers["Location"]) for a in answers} == {
        (303, "/malakoff/forgot-identifier/sent")}
    assert _count(db, "identifier_email") == 10


def _register_malakoff(client, db):
    db.add(Member(tenant="malakoff", member_number="23456789", last_name="DUPONT",
                  first_name="Jean", birth_date=date(1949, 11, 23), role="principal",
                  kind="health", status="active", mobile="+33612345678"))
    db.commit()
    page = client.get("/malakoff/register")
    assert sms_code_step(client, "malakoff", client.post("/malakoff/register", data={
        "member_number": "23456789", "last_name": "Dupont", "first_name": "Jean",
        "birth_date": "23/11/1949", "email": "jean@example.org", "email_confirm": "jean@example.org",
        "mobile": "06 12 34 56 78", "accept_terms": "y",
        "csrf_token": csrf_token(page.data)})).status_code == 303


def _new_link(client, email="jean@example.org"):
    page = client.get("/malakoff/activate/expired")
    return client.post("/malakoff/activate/expired",
                       data={"email": email, "csrf_token": csrf_token(page.data)})


def test_new_activation_links_at_most_five_an_hour_from_one_address(client, db):
    _register_malakoff(client, db)
    _at(client, "203.0.113.7")
    answers = [_new_link(client) for _ in range(8)]
    assert {a.status_code for a in answers} == {200}
    assert len({_body(a) for a in answers}) == 1
    assert "un nouveau lien vient d’y être envoyé".encode() in answers[-1].data
    assert _count(db, "activation") == 1 + 5
    _new_link(_at(client, "203.0.113.8"))
    assert _count(db, "activation") == 1 + 6


def test_a_repeated_registration_sends_no_second_email_within_five_minutes(client, db):
    _register_malakoff(client, db)
    path = re.search(r"http://localhost(/malakoff/activate/\S+)",
                     db.scalar(select(Message.body_text).where(Message.template == "activation")))[1]
    page = client.get("/malakoff/register")
    again = sms_code_step(client, "malakoff", client.post("/malakoff/register", data={
        "member_number": "23456789", "last_name": "Dupont", "first_name": "Jean",
        "birth_date": "23/11/1949", "email": "jean@example.org", "email_confirm": "jean@example.org",
        "mobile": "06 12 34 56 78", "accept_terms": "y", "csrf_token": csrf_token(page.data)}))
    assert again.status_code == 303 and again.headers["Location"].endswith("/register/sent")
    assert _count(db, "activation") == 1
    assert client.get(path).status_code == 200  # the link sent first still works


# -- a reset link belongs to the address it was sent to --------------------------------------------


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_a_reset_link_sent_before_a_change_of_email_opens_nothing_after_it(
        app, client, db, make, tenant):
    # Asked with the tenant's identifier: the email at Malakoff, the member number at Miel.
    flow = Flow(client, tenant, make.client(tenant),
                make.account(tenant, email="jeanne.ancienne@example.org"))
    page = client.get(f"/{tenant}/forgot-password")
    client.post(f"/{tenant}/forgot-password", data={"identifier": flow.identifier,
                                                    "csrf_token": csrf_token(page.data)})
    link = re.search(rf"http://localhost(/{tenant}/reset-password/\S+)",
                     db.scalar(select(Message.body_text).where(Message.template == "password_reset")))[1]
    form = client.get(link)
    assert form.status_code == 200

    flow.code()
    page = flow.http.get(f"/{tenant}/account/email")
    asked = flow.http.post(f"/{tenant}/account/email", data={
        "current_password": "Correct-Horse-7!", "email": "jeanne.nouvelle@example.net",
        "email_confirm": "jeanne.nouvelle@example.net", "csrf_token": csrf_token(page.data)})
    assert asked.status_code == 303
    page = flow.http.get(f"/{tenant}/account/email/confirm")
    changed = flow.http.post(f"/{tenant}/account/email/confirm", data={
        "code": last_code(app, template="email_code"), "csrf_token": csrf_token(page.data)})
    assert changed.status_code == 303

    refused = client.get(link)
    assert refused.status_code == 400 and b"plus valable" in refused.data
    assert f'href="/{tenant}/forgot-password"'.encode() in refused.data
    # A form opened before the change cannot use it either.
    posted = client.post(link, data={"password": "Lavande-Valensole-83!",
                                     "password_confirm": "Lavande-Valensole-83!",
                                     "csrf_token": csrf_token(form.data)})
    assert posted.status_code == 400
    db.expire_all()
    assert db.get(Account, flow.account.id).password_hash == flow.account.password_hash

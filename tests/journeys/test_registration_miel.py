"""Miel registration by NIR in three steps, then the set-password page (SPEC §3.2, §10)."""

from __future__ import annotations

import re
import time
from datetime import date

import pytest
from sqlalchemy import select

from idp import ratelimit
from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.registry.models import Member
from idp.registry.nir import compute_key
from tests.flows import Flow, code_asked_again_while_held_back, csrf_token, query

NIR = "262082A00403607"
PASSWORD = "Granit-Rose-Bastion-48!"


def nir(first13: str) -> str:
    return first13 + compute_key(first13)


@pytest.fixture
def registry(db):
    db.add_all([
        Member(tenant="miel", member_number="76543210", nir=NIR, last_name="N'DIAYE",
               first_name="Françoise", birth_date=date(1962, 8, 30), role="principal",
               kind="health", status="active", mobile="+33781223344"),
        Member(tenant="miel", member_number="76543211", nir=nir("2940313206118"),
               last_name="N'DIAYE", first_name="Awa", birth_date=date(1994, 3, 15),
               role="beneficiary", kind="health", status="active"),
    ])
    db.commit()


def _step1(client, **overrides):
    page = client.get("/miel/register")
    data = {"nir": "2 62 08 2A 004 036 07", "birth_date": "30/08/1962", "birth_department": "2A",
            "last_name": "Ndiaye", "first_name": "francoise", "csrf_token": csrf_token(page.data)}
    data.update(overrides)
    return client.post("/miel/register", data=data)


def _step2(client, **overrides):
    page = client.get("/miel/register/contact")
    data = {"email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org",
            "mobile": "07 81 22 33 44", "accept_terms": "y", "csrf_token": csrf_token(page.data)}
    data.update(overrides)
    return client.post("/miel/register/contact", data=data)


def _step3(client, code):
    page = client.get("/miel/register/code")
    return client.post("/miel/register/code", data={"code": code, "csrf_token": csrf_token(page.data)})


def _mail(db, template):
    db.expire_all()
    return db.scalars(select(Message).where(Message.template == template)).all()


def test_three_steps_then_two_emails_then_password_then_sign_in(app, client, db, registry, make):
    first = _step1(client)
    assert first.status_code == 303 and first.headers["Location"].endswith("/miel/register/contact")
    second = _step2(client)
    assert second.headers["Location"].endswith("/miel/register/code")
    assert 'aria-current="step"' in client.get("/miel/register/code").data.decode()
    sms = _mail(db, "registration_code")
    assert sms[0].channel == "sms" and sms[0].recipient == "+33781223344"
    third = _step3(client, re.search(r"\d{6}", sms[0].body_text)[0])
    assert third.status_code == 303

    identifier = _mail(db, "identifier")[0]
    assert "76543210" in identifier.body_text and identifier.recipient == "f.ndiaye@example.org"
    link = re.search(r"http://localhost(/miel/activate/\S+)", _mail(db, "activation")[0].body_text)[1]

    page = client.get(link)
    assert b"Date de naissance" in page.data
    wrong = client.post(link, data={"birth_date": "30/08/1963", "password": PASSWORD,
                                    "password_confirm": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert wrong.status_code == 400
    assert "ne correspond pas à votre dossier".encode() in wrong.data
    done = client.post(link, data={"birth_date": "30/08/1962", "password": PASSWORD,
                                   "password_confirm": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303

    account = db.scalar(select(Account).where(Account.member_number == "76543210"))
    assert account.status == "active" and account.phone_number == "+33781223344"
    assert account.phone_number_verified  # proven by the SMS code at step 3
    flow = Flow(client, "miel", make.client("miel"), account)
    signed_in = flow.login(flow.authorize(scope="openid member"), password=PASSWORD)
    assert signed_in.headers["Location"].endswith("/miel/login/terms")
    terms = client.get(signed_in.headers["Location"])
    assert terms.status_code == 200 and b"Avant de continuer" in terms.data
    refused = client.post("/miel/login/terms", data={"statements": "post", "letters": "email",
                                                     "csrf_token": csrf_token(terms.data)})
    assert refused.status_code == 400 and b"Vous devez accepter" in refused.data
    accepted = client.post("/miel/login/terms", data={
        "accept_terms": "y", "statements": "post", "letters": "email",
        "csrf_token": csrf_token(terms.data)})
    access_token = flow.token(query(accepted.headers["Location"])["code"]).json["access_token"]
    # OIDC Core 5.4: with an access token, scope claims are released at the UserInfo endpoint.
    claims = client.get("/miel/userinfo", headers={"Authorization": f"Bearer {access_token}"}).json
    assert claims["communication_preferences"] == {"statements": "post", "letters": "email",
                                                   "marketing": False}
    db.expire_all()
    assert db.get(Account, account.id).terms_version == "2026-01"


def test_terms_are_asked_again_when_the_version_changes(client, db, make):
    member = make.account("malakoff")
    member.terms_version = "2025-06"
    db.commit()
    flow = Flow(client, "malakoff", make.client(), member)
    page = client.get(flow.login(flow.authorize()).headers["Location"])
    assert b"Avant de continuer" in page.data
    assert "préférences".encode() not in page.data  # Malakoff does not ask them
    # A step of the sign-in: its time limit is said, and deadline.js warns before it ends.
    assert "il vous reste 15\u00a0minutes pour terminer votre connexion.".encode() in page.data
    assert b'class="deadline"' in page.data and b'src="/static/deadline.js"' in page.data
    accepted = client.post("/malakoff/login/terms", data={"accept_terms": "y",
                                                          "csrf_token": csrf_token(page.data)})
    assert "code" in query(accepted.headers["Location"])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nir": "262082A00403608"}, "La clé du numéro de sécurité sociale"),
    ({"nir": "262082B00403607"}, "La clé du numéro de sécurité sociale"),  # 2B key differs from 2A
    ({"nir": "26208"}, "15\u00a0caractères"),
    ({"nir": "562082A00403607"}, "doit commencer par 1 ou 2"),
    ({"nir": nir("2621375004036")}, "Le mois de naissance"),
    ({"birth_department": "75"}, "Le département de naissance ne correspond pas"),
    ({"birth_date": "30/09/1962"}, "La date de naissance ne correspond pas"),
    ({"birth_date": "30/08/1972"}, "La date de naissance ne correspond pas"),
    ({"birth_department": ""}, "Choisissez votre département de naissance."),
])
def test_step_one_refuses_inconsistent_identities(client, db, registry, overrides, message):
    response = _step1(client, **overrides)
    assert response.status_code == 400
    assert message.encode() in response.data


def test_corsica_accepts_the_historical_department_20(client, db, registry):
    # Born in 1962, before the 2A/2B split: the NIR may carry 2A; the list offers 2A and 2B.
    assert _step1(client, birth_department="2B").status_code == 303


@pytest.mark.parametrize(("first13", "department"), [
    ("1450396123456", "96"),   # the historical department
    ("1451298812345", "988"),  # New Caledonia: three digits, then the commune's two
    ("1450397812345", "978"),  # Saint-Martin
])
def test_members_born_wherever_a_nir_says_can_pick_their_department(
        client, db, registry, first13, department):
    db.add(Member(tenant="miel", member_number="76543299", nir=nir(first13), last_name="MOREAU",
                  first_name="Paul", birth_date=date(1945, int(first13[3:5]), 1), role="principal",
                  kind="health", status="active", mobile="+33781223399"))
    db.commit()
    page = client.get("/miel/register")
    assert f'<option value="{department}">'.encode() in page.data

    response = _step1(client, nir=nir(first13), birth_date=f"01/{first13[3:5]}/1945",
                      birth_department=department, last_name="Moreau", first_name="Paul")

    assert response.status_code == 303, response.data[:800]
    assert response.headers["Location"].endswith("/miel/register/contact")


def test_a_beneficiary_is_told_the_principal_account_covers_them(client, db, registry):
    response = _step1(client, nir=nir("2940313206118"), birth_date="15/03/1994",
                      birth_department="13", first_name="Awa")
    assert response.status_code == 400
    assert b"membre principal" in response.data


def test_a_wrong_sms_code_is_refused_and_nothing_is_created(client, db, registry):
    _step1(client)
    _step2(client)
    response = _step3(client, "000000")
    assert response.status_code == 400
    assert db.scalar(select(Account)) is None


def test_a_near_miss_goes_to_review_after_the_sms(app, client, db, registry):
    _step1(client, first_name="Francoisse")
    _step2(client)
    code = re.search(r"\d{6}", _mail(db, "registration_code")[0].body_text)[0]
    assert _step3(client, code).status_code == 303
    assert db.scalar(select(RegistrationRequest)).reason == "near_miss"
    assert db.scalar(select(Account)) is None


def test_the_steps_cannot_be_skipped(client, registry):
    assert client.get("/miel/register/contact").headers["Location"].endswith("/miel/register")
    assert client.get("/miel/register/code").headers["Location"].endswith("/miel/register")


def test_a_new_code_withdraws_the_one_still_held_back(client, db, registry, monkeypatch):
    _step1(client)
    assert code_asked_again_while_held_back(
        db, monkeypatch, "registration_code", lambda: _step2(client),
        lambda: _step2(client, mobile="07 81 22 33 55")) == ["expired", "sent"]


def test_registration_codes_count_in_the_send_budget_of_the_address(client, registry, monkeypatch):
    """One address cannot have SMS sent to number after number: the registration code goes
    through the same limits as every other code."""
    monkeypatch.setattr(ratelimit, "OTP_SEND_PER_IP", ratelimit.Limit("otp-send:ip", 1, 900))
    _step1(client)
    assert _step2(client).status_code == 303
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    refused = _step2(client, mobile="07 81 22 33 99")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_a_code_asked_again_at_once_is_told_when_on_the_contact_step(client, db, registry):
    _step1(client)
    assert _step2(client).status_code == 303
    again = _step2(client)
    # The step again, with the mobile as typed and when a new code may be asked on its field.
    assert again.status_code == 400
    assert b'id="mobile-error"' in again.data
    assert b"Vous pourrez en demander un nouveau dans" in again.data
    assert b'value="07 81 22 33 44"' in again.data
    assert len(_mail(db, "registration_code")) == 1


def test_a_corrected_mobile_gets_its_code_at_once(client, db, registry):
    # A mistyped number, seen on the code page and corrected: no wait for the cooldown, which
    # is the same number's; the first code no longer proves anything.
    _step1(client)
    assert _step2(client, mobile="07 81 22 33 45").status_code == 303
    corrected = _step2(client)
    assert corrected.status_code == 303 and corrected.headers["Location"].endswith("/miel/register/code")
    sent = _mail(db, "registration_code")
    assert [message.recipient for message in sent] == ["+33781223345", "+33781223344"]
    first_code = re.search(r"\d{6}", sent[0].body_text).group()
    replaced = _step3(client, first_code)
    assert replaced.status_code == 400
    assert "Ce code a été remplacé par celui envoyé par SMS.".encode() in replaced.data
    assert _step3(client, re.search(r"\d{6}", sent[1].body_text).group()).status_code == 303


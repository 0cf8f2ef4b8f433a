"""Identity checks answer every outcome in words and cannot be brute-forced (SPEC §2, §3.3).

Each refusal of a registration step has its message on both tenants (the identity, the
SMS code, the limits per address); failed matches are limited per member number and per
NIR, past which even the right identity answers as a miss; the birth date asked on a Miel
activation link has 5 tries.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from idp import ratelimit
from idp.accounts.models import Account
from idp.channels.models import Message
from idp.events import AuditEvent
from idp.registry.models import Member
from idp.registry.nir import compute_key
from tests.flows import csrf_token

NO_MATCH = "ne correspondent pas à celles de votre contrat"
BENEFICIARY = "en tant que bénéficiaire"
TERMINATED = "plus actif"
PASSWORD = "Granit-Rose-Bastion-48!"


def _nir(first13: str) -> str:
    return first13 + compute_key(first13)


@pytest.fixture
def registry(db):
    db.add_all([
        Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
               first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
               kind="health", status="active"),
        Member(tenant="malakoff", member_number="34567890", last_name="DUPONT-MOREL",
               first_name="Lucie", birth_date=date(2012, 5, 6), role="beneficiary",
               kind="health", status="active"),
        Member(tenant="malakoff", member_number="45678901", last_name="THÉVENOT",
               first_name="Marcel", birth_date=date(1940, 1, 15), role="principal",
               kind="pension", status="terminated"),
        Member(tenant="miel", member_number="76543210", nir="262082A00403607", last_name="N'DIAYE",
               first_name="Françoise", birth_date=date(1962, 8, 30), role="principal",
               kind="health", status="active", mobile="+33781223344"),
        Member(tenant="miel", member_number="76543211", nir=_nir("2940313206118"),
               last_name="N'DIAYE", first_name="Awa", birth_date=date(1994, 3, 15),
               role="beneficiary", kind="health", status="active"),
        Member(tenant="miel", member_number="76543212", nir=_nir("1550575123456"),
               last_name="MARTIN", first_name="Paul", birth_date=date(1955, 5, 2),
               role="principal", kind="health", status="terminated"),
    ])
    db.commit()


FRANCOISE = {"nir": "2 62 08 2A 004 036 07", "birth_date": "30/08/1962", "birth_department": "2A",
             "last_name": "Ndiaye", "first_name": "francoise"}
AWA = {"nir": _nir("2940313206118"), "birth_date": "15/03/1994", "birth_department": "13",
       "last_name": "N'Diaye", "first_name": "Awa"}
PAUL = {"nir": _nir("1550575123456"), "birth_date": "02/05/1955", "birth_department": "75",
        "last_name": "Martin", "first_name": "Paul"}
JEAN_PIERRE = {"member_number": "23456789", "last_name": "dupont morel", "first_name": "jean pierre",
               "birth_date": "23/11/1949"}
LUCIE = {"member_number": "34567890", "last_name": "Dupont-Morel", "first_name": "Lucie",
         "birth_date": "06/05/2012"}
MARCEL = {"member_number": "45678901", "last_name": "Thevenot", "first_name": "Marcel",
          "birth_date": "15/01/1940"}


def _malakoff(client, **fields):
    page = client.get("/malakoff/register")
    data = {"email": "jp.dupont@example.org", "email_confirm": "jp.dupont@example.org",
            "mobile": "06 12 34 56 78", "accept_terms": "y", "csrf_token": csrf_token(page.data),
            **fields}
    return client.post("/malakoff/register", data=data)


def _miel(client, **fields):
    page = client.get("/miel/register")
    return client.post("/miel/register", data={"csrf_token": csrf_token(page.data), **fields})


def _refusal(response) -> str:
    assert response.status_code == 400, response.status_code
    text = response.get_data(as_text=True)
    # Said at the top of the page (the error summary), not only in the status.
    assert "Erreur" in text
    return text


@pytest.mark.parametrize(("fields", "message"), [
    ({**JEAN_PIERRE, "birth_date": "24/11/1949"}, NO_MATCH),
    ({**JEAN_PIERRE, "member_number": "99999999"}, NO_MATCH),
    ({**JEAN_PIERRE, "first_name": "Sophie", "last_name": "Legrand"}, NO_MATCH),
    (LUCIE, BENEFICIARY),
    (MARCEL, TERMINATED),
], ids=["wrong birth date", "unknown number", "other names", "beneficiary", "terminated"])
def test_every_refusal_of_malakoff_registration_has_its_message(client, registry, fields, message):
    assert message in _refusal(_malakoff(client, **fields))


@pytest.mark.parametrize(("fields", "message"), [
    ({**FRANCOISE, "birth_date": "31/08/1962"}, NO_MATCH),
    ({**FRANCOISE, "nir": _nir("2620875123456"), "birth_department": "75"}, NO_MATCH),
    ({**FRANCOISE, "first_name": "Awa"}, NO_MATCH),
    (AWA, BENEFICIARY),
    (PAUL, TERMINATED),
], ids=["wrong birth date", "unknown nir", "other names", "beneficiary", "terminated"])
def test_every_refusal_of_miel_registration_has_its_message(client, registry, fields, message):
    assert message in _refusal(_miel(client, **fields))


def test_a_miel_miss_is_recorded_like_a_malakoff_one(client, db, registry):
    _refusal(_miel(client, **{**FRANCOISE, "birth_date": "31/08/1962"}))
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.tag == "registration:miss", AuditEvent.tenant == "miel")) == 1


def _limited(tenant: str) -> float:
    return REGISTRY.get_sample_value("idp_registrations_total",
                                     {"tenant": tenant, "outcome": "limited"}) or 0.0


def _guess_birth_dates(post, fields, count):
    for day in range(1, count + 1):
        # Miel: the NIR's year and month must agree with the date typed (the form checks it).
        wrong = f"{day:02d}/08/1962" if "nir" in fields else f"{day:02d}/01/1950"
        text = _refusal(post(**{**fields, "birth_date": wrong}))
        assert NO_MATCH in text


@pytest.mark.parametrize(("tenant", "post", "right", "other_key"), [
    ("malakoff", _malakoff, JEAN_PIERRE, {**LUCIE}),
    ("miel", _miel, FRANCOISE, {**AWA}),
], ids=["member number", "nir"])
def test_failed_matches_are_limited_per_key_then_even_the_right_identity_is_a_miss(
        client, app, db, registry, tenant, post, right, other_key):
    before = _limited(tenant)
    allowed = (ratelimit.MATCH_PER_MEMBER_NUMBER if tenant == "malakoff"
               else ratelimit.MATCH_PER_NIR).limit
    _guess_birth_dates(lambda **fields: post(client, **fields), right, allowed)

    # The right names and birth date now get the words of any miss: a guesser cannot tell.
    answer = _refusal(post(client, **right))
    assert NO_MATCH in answer
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Account).where(Account.tenant == tenant)) == 0
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.tag == "registration:match:limited")).all()
    assert event.tenant == tenant and event.ip == "127.0.0.1"
    assert "262082" not in str(event.data) and "23456789" not in str(event.data)
    assert _limited(tenant) - before == 1

    # Another key is not held back by this one's guesses (from the same address, under its limit).
    other = post(client, **other_key)
    assert BENEFICIARY in _refusal(other)


def test_a_right_identity_gives_back_its_count(client, app, db, registry):
    """Only failures count: a member who got it right, then registers again, is not held back."""
    allowed = ratelimit.MATCH_PER_NIR.limit
    _guess_birth_dates(lambda **fields: _miel(client, **fields), FRANCOISE, allowed - 1)
    assert _miel(client, **FRANCOISE).status_code == 303
    assert _miel(client, **FRANCOISE).status_code == 303


# -- the birth date asked on a Miel activation link ---------------------------------------------

def _activation_link(client, db) -> str:
    assert _miel(client, **FRANCOISE).status_code == 303
    page = client.get("/miel/register/contact")
    client.post("/miel/register/contact", data={
        "email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org",
        "mobile": "07 81 22 33 44", "accept_terms": "y", "csrf_token": csrf_token(page.data)})
    db.expire_all()
    sms = db.scalar(select(Message).where(Message.template == "registration_code"))
    page = client.get("/miel/register/code")
    client.post("/miel/register/code", data={"code": re.search(r"\d{6}", sms.body_text)[0],
                                             "csrf_token": csrf_token(page.data)})
    db.expire_all()
    body = db.scalar(select(Message).where(Message.template == "activation")).body_text
    return re.search(r"http://localhost(/miel/activate/\S+)", body)[1]


def _define(client, link, birth_date):
    page = client.get(link)
    assert page.status_code == 200, page.status_code
    return client.post(link, data={"birth_date": birth_date, "password": PASSWORD,
                                   "password_confirm": PASSWORD, "csrf_token": csrf_token(page.data)})


def test_the_birth_date_on_an_activation_link_has_five_tries_then_the_link_is_dead(client, db, registry):
    link = _activation_link(client, db)
    for left in (4, 3, 2, 1):
        wrong = _define(client, link, "01/01/1960")
        assert wrong.status_code == 400
        text = wrong.get_data(as_text=True)
        assert "ne correspond pas à votre dossier" in text
        assert f"Il vous reste {left} essai" in text
    last = _define(client, link, "02/01/1960")
    assert last.status_code == 303 and last.headers["Location"].endswith("/miel/activate/expired")
    dead = client.get(last.headers["Location"]).get_data(as_text=True)
    assert "dossier, 5\u00a0fois" in dead and "Demandez un nouveau lien" in dead

    # Even the right date opens nothing now: the page offers a new link instead.
    opened = client.get(link)
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/miel/activate/expired")
    page = client.get("/miel/activate/expired")
    right = client.post(link, data={"birth_date": "30/08/1962", "password": PASSWORD,
                                    "password_confirm": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert right.status_code == 303
    db.expire_all()
    assert db.scalar(select(Account).where(Account.member_number == "76543210")).status == "pending"

    # A new link has its own tries.
    ask = client.post("/miel/activate/expired", data={"email": "f.ndiaye@example.org",
                                                      "csrf_token": csrf_token(page.data)})
    assert ask.status_code == 200
    db.expire_all()
    newest = db.scalars(select(Message).where(Message.template == "activation")
                        .order_by(Message.id.desc())).first()
    fresh = re.search(r"http://localhost(/miel/activate/\S+)", newest.body_text)[1]
    assert fresh != link
    assert _define(client, fresh, "30/08/1962").status_code == 303
    db.expire_all()
    assert db.scalar(select(Account).where(Account.member_number == "76543210")).status == "active"


def test_the_right_birth_date_does_not_use_a_try(client, db, registry):
    link = _activation_link(client, db)
    for _ in range(ratelimit.ACTIVATION_BIRTH_DATE_TRIES.limit + 1):
        weak = client.post(link, data={"birth_date": "30/08/1962", "password": "court",
                                       "password_confirm": "court",
                                       "csrf_token": csrf_token(client.get(link).data)})
        assert weak.status_code == 400
    assert _define(client, link, "30/08/1962").status_code == 303


# -- the limits of the other steps, said in words on both tenants -------------------------------

TOO_MANY = "Trop de tentatives. Veuillez réessayer dans"


@pytest.mark.parametrize(("post", "miss"), [
    (_malakoff, {**JEAN_PIERRE, "birth_date": "24/11/1949"}),
    (_miel, {**FRANCOISE, "first_name": "Awa"}),
], ids=["malakoff", "miel"])
def test_identity_checks_from_one_address_are_limited_with_words_and_a_wait(client, registry, post, miss):
    for _ in range(ratelimit.REGISTRATION_PER_IP.limit):
        assert NO_MATCH in _refusal(post(client, **miss))
    refused = post(client, **miss)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert TOO_MANY in refused.get_data(as_text=True)


def _code_step(client, tenant: str):
    if tenant == "malakoff":
        assert _malakoff(client, **JEAN_PIERRE).status_code == 303
    else:
        assert _miel(client, **FRANCOISE).status_code == 303
        page = client.get("/miel/register/contact")
        assert client.post("/miel/register/contact", data={
            "email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org",
            "mobile": "07 81 22 33 44", "csrf_token": csrf_token(page.data)}).status_code == 303

    def typed(code: str):
        page = client.get(f"/{tenant}/register/code")
        return client.post(f"/{tenant}/register/code",
                           data={"code": code, "csrf_token": csrf_token(page.data)})
    return typed


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_what_cannot_be_a_code_spends_none_of_the_sms_codes_tries(client, db, registry, tenant):
    typed = _code_step(client, tenant)
    sent = db.scalar(select(Message).where(Message.template == "registration_code"))
    right = re.search(r"\d{6}", sent.body_text)[0]
    for _ in range(6):
        answer = typed("12ab")
        assert answer.status_code == 400
        assert "Le code comporte 6\u00a0chiffres." in answer.get_data(as_text=True)
    assert typed(right).status_code == 303


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_every_outcome_of_the_sms_code_step_has_its_message(client, db, registry, tenant):
    typed = _code_step(client, tenant)
    sent = db.scalar(select(Message).where(Message.template == "registration_code"))
    right = re.search(r"\d{6}", sent.body_text)[0]
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1):
        answer = typed(wrong)
        assert answer.status_code == 400
        plural = "s" if left > 1 else ""
        assert f"Code incorrect. Il vous reste {left} essai{plural}." in answer.get_data(as_text=True)
    typed(wrong)
    # Out of tries: even the right code is refused, and the page says how to get another.
    spent = typed(right)
    assert spent.status_code == 400
    assert "Ce code n’est plus valable. Revenez à l’étape précédente pour en recevoir un nouveau." \
        in spent.get_data(as_text=True)
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Account)) == 0


def test_codes_received_by_post_are_limited_per_address_with_words_and_a_wait(client, registry):
    for _ in range(ratelimit.LETTER_CODE_PER_IP.limit):
        page = client.get("/malakoff/register/letter")
        answer = client.post("/malakoff/register/letter", data={
            "member_number": "23456789", "code": "ABCD-EFGH", "csrf_token": csrf_token(page.data)})
        assert answer.status_code == 400
    page = client.get("/malakoff/register/letter")
    refused = client.post("/malakoff/register/letter", data={
        "member_number": "23456789", "code": "ABCD-EFGH", "csrf_token": csrf_token(page.data)})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert TOO_MANY in refused.get_data(as_text=True)

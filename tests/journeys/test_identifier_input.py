"""Member numbers as members type them on the pages: with spaces, never in other scripts' digits."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from idp.accounts.models import Account
from idp.registry.models import Member
from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, query, sms_code_step


def _spaced(number: str) -> str:
    return f"{number[:4]} {number[4:]}"


@pytest.fixture
def miel_flow(client, make):
    return Flow(client, "miel", make.client("miel"), make.account("miel", email="adherent@example.org"))


def test_a_member_number_typed_with_a_space_signs_in(miel_flow):
    response = miel_flow.login(miel_flow.authorize(), identifier=_spaced(miel_flow.account.member_number))

    assert "code" in query(response.headers["Location"])


def test_a_legacy_member_number_typed_with_a_space_is_accepted(client, rp, make):
    legacy = make.account("malakoff", legacy_login=True)
    flow = Flow(client, "malakoff", rp, legacy)
    page, interaction = flow.sign_in_page(flow.authorize())

    answer = client.post("/malakoff/login", data={
        "interaction": interaction,
        "identifier": _spaced(legacy.member_number), "password": PASSWORD,
        "csrf_token": csrf_token(page.data)})

    assert answer.status_code == 303 and answer.headers["Location"].endswith("/malakoff/login/code")


def test_failures_count_against_the_number_however_it_is_spaced(miel_flow):
    number = miel_flow.account.member_number
    spellings = [number, _spaced(number), f" {number} ", "\t".join((number[:4], number[4:])), number]
    statuses = [miel_flow.login(miel_flow.authorize(), identifier=typed, password="wrong").status_code
                for typed in spellings]
    assert statuses == [401, 401, 401, 401, 429]

    locked = miel_flow.login(miel_flow.authorize(), identifier=_spaced(number))
    assert locked.status_code == 429


@pytest.mark.parametrize("typed", ["٢٣٤٥٦٧٨٩", "２３４５６７８９"])
def test_digits_of_other_scripts_do_not_sign_in(miel_flow, db, typed):
    account = miel_flow.account
    account.member_number = "23456789"
    db.commit()

    refused = miel_flow.login(miel_flow.authorize(), identifier=typed)

    assert refused.status_code == 401


@pytest.fixture
def member(db):
    record = Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
                    first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
                    kind="health", status="active", mobile="+33612345678")
    db.add(record)
    db.commit()
    return record


def _register(client, member_number: str):
    page = client.get("/malakoff/register")
    return sms_code_step(client, "malakoff", client.post("/malakoff/register", data={
        "member_number": member_number, "last_name": "Dupont-Morel", "first_name": "Jean-Pierre",
        "birth_date": "23/11/1949", "email": "jp.dupont@example.org",
        "email_confirm": "jp.dupont@example.org", "mobile": "06 12 34 56 78", "accept_terms": "y",
        "csrf_token": csrf_token(page.data)}))


def test_a_member_number_typed_with_a_space_registers(client, db, member):
    assert _register(client, "2345 6789").status_code == 303

    account = db.scalar(select(Account).where(Account.tenant == "malakoff"))
    assert account.member_number == "23456789"


@pytest.mark.parametrize("typed", ["٢٣٤٥٦٧٨٩", "２３４５６７８９", "2345 678"])
def test_a_member_number_in_other_digits_is_refused_at_registration(client, db, member, typed):
    response = _register(client, typed)

    assert response.status_code == 400
    assert "Le numéro d’adhérent comporte 8\u00a0chiffres.".encode() in response.data
    assert db.scalar(select(Account).where(Account.tenant == "malakoff")) is None

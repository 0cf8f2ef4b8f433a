"""Registration records only contacts their owner has proven (SPEC §3.3): card data (member
number or NIR, names, birth date) is printed on cards and letters, so it never opens an
account by itself. Each test is one way an attacker holding a member's card would try."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.registry.models import Member
from tests.flows import Flow, csrf_token, query, sms_code_step

PASSWORD = "Nouveau-Depart-2026!"
ATTACKER = {"email": "pirate@example.net", "email_confirm": "pirate@example.net",
            "mobile": "07 99 88 77 66"}


def _member(db, **contacts) -> Member:
    member = Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
                    first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
                    kind="health", status="active", **contacts)
    db.add(member)
    db.commit()
    return member


def _step_one(client, **overrides):
    page = client.get("/malakoff/register")
    return client.post("/malakoff/register", data={
        "member_number": "23456789", "last_name": "Dupont-Morel", "first_name": "Jean-Pierre",
        "birth_date": "23/11/1949", "email": "jp.dupont@example.org",
        "email_confirm": "jp.dupont@example.org", "mobile": "06 12 34 56 78", "accept_terms": "y",
        "csrf_token": csrf_token(page.data), **overrides})


def _register(client, **overrides):
    return sms_code_step(client, "malakoff", _step_one(client, **overrides))


def _messages(db, template: str) -> list[Message]:
    db.expire_all()
    return list(db.scalars(select(Message).where(Message.template == template).order_by(Message.id)))


def _accounts(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(Account))


def _page(client, response) -> str:
    assert response.status_code == 303, response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_mobile_is_proven_by_a_code_before_anything_is_created(client, db):
    _member(db, mobile="+33612345678")
    step = _step_one(client)
    assert step.status_code == 303 and step.headers["Location"].endswith("/malakoff/register/code")
    [sms] = _messages(db, "registration_code")
    assert sms.channel == "sms" and sms.recipient == "+33612345678"
    assert _accounts(db) == 0 and _messages(db, "activation") == []

    page = client.get("/malakoff/register/code")
    assert "étape 2 sur 2" in page.get_data(as_text=True)
    wrong = client.post("/malakoff/register/code", data={"code": "000000" if "000000" not in sms.body_text
                                                          else "111111", "csrf_token": csrf_token(page.data)})
    assert wrong.status_code == 400 and "Code incorrect" in wrong.get_data(as_text=True)
    assert _accounts(db) == 0 and _messages(db, "activation") == []


def test_a_mobile_on_file_must_be_the_one_typed_and_hears_of_the_request(client, db):
    _member(db, mobile="+33612345678")
    answer = _register(client, **ATTACKER)
    assert "en cours de vérification" in _page(client, answer)
    assert _accounts(db) == 0 and _messages(db, "activation") == []
    assert db.scalar(select(RegistrationRequest.reason)) == "contact_mismatch"
    [notice] = _messages(db, "registration_notice")
    assert (notice.channel, notice.recipient) == ("sms", "+33612345678")


def test_card_data_alone_does_not_open_the_account_of_a_member_without_contacts(client, db):
    """No email, no mobile on file and no postal address: support decides."""
    _member(db)
    answer = _register(client, **ATTACKER)
    assert "en cours de vérification" in _page(client, answer)
    assert _accounts(db) == 0 and _messages(db, "activation") == []
    request = db.scalar(select(RegistrationRequest))
    assert request.reason == "no_contact" and request.submitted["email"] == "pirate@example.net"


def test_review_approve_refuses_an_account_that_became_active(client, db, runner):
    _member(db, mobile="+33612345678")
    _register(client, first_name="Jean-Piere")  # a near miss, filed for review
    request = db.scalar(select(RegistrationRequest))
    # Meanwhile the member registers with the right names and activates.
    _register(client)
    activation = _messages(db, "activation")[-1].body_text
    path = activation[activation.index("/malakoff/activate/"):].split()[0]
    page = client.get(path)
    client.post(path, data={"password": PASSWORD, "password_confirm": PASSWORD,
                            "csrf_token": csrf_token(page.data)})
    db.expire_all()
    account = db.scalar(select(Account))
    assert account.status == "active"

    shown = runner.invoke(args=["review", "show", "--tenant", "malakoff", str(request.id)])
    assert "account: active since" in shown.output
    refused = runner.invoke(args=["review", "approve", "--tenant", "malakoff", str(request.id)])
    assert refused.exit_code == 1
    assert "is active" in refused.output and "idp accounts set-contact" in refused.output
    db.expire_all()
    assert db.get(RegistrationRequest, request.id).status == "pending"  # nothing changed
    assert db.get(Account, account.id).email == "jp.dupont@example.org"
    assert len(_messages(db, "activation")) == 1


def test_a_number_support_vouched_for_is_not_a_second_factor_until_proven(client, db, runner, make):
    _member(db, mobile="+33612345678")
    _register(client, first_name="Jean-Piere", mobile="06 12 34 56 78")
    request = db.scalar(select(RegistrationRequest))
    shown = runner.invoke(args=["review", "show", "--tenant", "malakoff", str(request.id)])
    assert "account: none yet" in shown.output
    assert runner.invoke(args=["review", "approve", "--tenant", "malakoff",
                               str(request.id)]).exit_code == 0
    activation = _messages(db, "activation")[-1].body_text
    path = activation[activation.index("/malakoff/activate/"):].split()[0]
    page = client.get(path)
    client.post(path, data={"password": PASSWORD, "password_confirm": PASSWORD,
                            "csrf_token": csrf_token(page.data)})
    db.expire_all()
    account = db.scalar(select(Account))
    assert account.phone_number == "+33612345678" and not account.phone_number_verified

    flow = Flow(client, "malakoff", make.client(), account)
    login_url = flow.authorize().headers["Location"]
    page = client.get(login_url)
    posted = client.post("/malakoff/login", data={
        "interaction": query(login_url)["interaction"], "identifier": account.email,
        "password": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    choose = client.get("/malakoff/login/code").get_data(as_text=True)
    assert "Par e-mail" in choose and "Par SMS" not in choose
    refused = client.post("/malakoff/login/code", data={
        "channel": "sms", "csrf_token": csrf_token(choose.encode())})
    assert refused.status_code == 200 and _messages(db, "otp_code") == []


def test_an_activation_with_other_contacts_is_told_to_the_mobile_on_file(client, db, runner):
    _member(db, mobile="+33612345678")
    _register(client, first_name="Jean-Piere", mobile="06 98 76 54 32")
    request = db.scalar(select(RegistrationRequest))
    assert runner.invoke(args=["review", "approve", "--tenant", "malakoff",
                               str(request.id)]).exit_code == 0
    activation = _messages(db, "activation")[-1].body_text
    path = activation[activation.index("/malakoff/activate/"):].split()[0]
    page = client.get(path)
    assert client.post(path, data={"password": PASSWORD, "password_confirm": PASSWORD,
                                   "csrf_token": csrf_token(page.data)}).status_code == 303
    [notice] = _messages(db, "activation_notice")
    assert (notice.channel, notice.recipient) == ("sms", "+33612345678")


@pytest.mark.parametrize("status", ["code", "sent"])
def test_the_same_member_registering_again_while_pending_gets_the_same_page(client, db, status):
    """Not re-targeted, and no sign on the page of whether an account waits."""
    _member(db, mobile="+33612345678")
    first = _register(client)
    second = _register(client) if status == "sent" else _step_one(client)
    assert first.headers["Location"].endswith("/register/sent")
    assert second.status_code == 303
    assert query(second.headers["Location"]) == {}

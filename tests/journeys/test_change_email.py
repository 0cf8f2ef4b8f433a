"""Change of email on the account page: password again, a code to the new address (SPEC §6)."""

from __future__ import annotations

from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.events import AuditEvent
from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, last_code

NEW_ADDRESS = "jeanne.nouvelle@example.net"


def _ask(flow, address=NEW_ADDRESS, confirm=None, password=PASSWORD):
    page = flow.http.get("/malakoff/account/email")
    assert page.status_code == 200
    return flow.http.post("/malakoff/account/email", data={
        "current_password": password, "email": address, "email_confirm": confirm or address,
        "csrf_token": csrf_token(page.data)})


def _confirm(flow, code):
    page = flow.http.get("/malakoff/account/email/confirm")
    return flow.http.post("/malakoff/account/email/confirm",
                          data={"code": code, "csrf_token": csrf_token(page.data)})


def _codes_sent(db) -> int:
    return db.scalar(select(func.count()).select_from(Message).where(Message.template == "email_code"))


def test_a_new_email_is_proven_by_a_code_and_becomes_the_identifier(app, flow, db):
    old_address = flow.account.email
    flow.code()
    sent = _ask(flow, address="  Jeanne.Nouvelle@Example.NET ", confirm="  Jeanne.Nouvelle@Example.NET ")
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/malakoff/account/email/confirm")
    code_page = flow.http.get(sent.headers["Location"])
    assert NEW_ADDRESS.encode() in code_page.data
    message = db.scalar(select(Message).where(Message.template == "email_code"))
    assert message.recipient == NEW_ADDRESS

    done = _confirm(flow, last_code(app, template="email_code"))
    assert done.status_code == 303 and "changed=email" in done.headers["Location"]
    assert "Votre adresse e-mail est enregistrée".encode() in flow.http.get(done.headers["Location"]).data
    db.expire_all()
    account = db.get(Account, flow.account.id)
    assert account.email == NEW_ADDRESS and account.email_verified
    notice = db.scalar(select(Message).where(Message.template == "email_changed"))
    assert notice.recipient == old_address
    assert NEW_ADDRESS not in notice.body_text and "j••••@example.net" in notice.body_text
    assert db.scalar(select(AuditEvent).where(AuditEvent.tag == "account:email:change")) is not None

    # The new address signs in; the old one names nobody any more.
    other = Flow(app.test_client(), "malakoff", flow.rp, account)
    assert other.login(other.authorize(), identifier=old_address).status_code == 401
    assert "code=" in other.login(other.authorize(), identifier=NEW_ADDRESS).headers["Location"]


def test_a_wrong_code_changes_nothing_and_the_code_is_single_use(app, flow, db):
    flow.code()
    _ask(flow)
    code = last_code(app, template="email_code")
    wrong = "000000" if code != "000000" else "111111"
    refused = _confirm(flow, wrong)
    assert refused.status_code == 400 and b"Code incorrect" in refused.data
    db.expire_all()
    assert db.get(Account, flow.account.id).email == flow.account.email
    assert _confirm(flow, code).status_code == 303
    # Used: the confirmation page has nothing pending any more.
    again = flow.http.get("/malakoff/account/email/confirm")
    assert again.status_code == 303 and again.headers["Location"].endswith("/malakoff/account/email")


def test_an_expired_code_is_refused(app, flow, db, monkeypatch):
    import time  # noqa: PLC0415 - the clock is frozen below

    flow.code()
    _ask(flow)
    code = last_code(app, template="email_code")
    later = time.time() + 181
    monkeypatch.setattr(time, "time", lambda: later)
    refused = _confirm(flow, code)
    assert refused.status_code == 400 and b"plus valable" in refused.data
    db.expire_all()
    assert db.get(Account, flow.account.id).email == flow.account.email


def test_an_address_of_another_account_gets_its_code_and_is_refused_at_confirmation(app, flow, make, db):
    taken = make.account("malakoff", email="deja.pris@example.org")
    flow.code()
    # Asked, a taken address and a free one get the same answer: a code is on its way.
    asked = _ask(flow, address=taken.email)
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/malakoff/account/email/confirm")
    assert _codes_sent(db) == 1
    code_page = flow.http.get(asked.headers["Location"])
    assert code_page.status_code == 200 and taken.email.encode() in code_page.data
    # Only who reads that mailbox learns, with the code, that the address is taken, not by whom.
    response = _confirm(flow, last_code(app, template="email_code"))
    assert response.status_code == 409
    assert "déjà celle d’un autre compte".encode() in response.data
    assert taken.member_number.encode() not in response.data
    db.expire_all()
    assert db.get(Account, flow.account.id).email == flow.account.email
    assert db.get(Account, taken.id).email == taken.email


def test_the_address_taken_while_the_code_travels_is_refused(app, flow, make, db):
    flow.code()
    _ask(flow)
    make.account("malakoff", email=NEW_ADDRESS)
    response = _confirm(flow, last_code(app, template="email_code"))
    assert response.status_code == 409
    db.expire_all()
    assert db.get(Account, flow.account.id).email == flow.account.email


def test_the_password_and_two_matching_addresses_are_needed(flow, db):
    flow.code()
    assert _ask(flow, password="wrong").status_code == 400
    assert _ask(flow, confirm="autre@example.net").status_code == 400
    assert _ask(flow, address="pas-une-adresse", confirm="pas-une-adresse").status_code == 400
    same = _ask(flow, address=flow.account.email)
    assert same.status_code == 400 and "déjà l’adresse e-mail de votre compte".encode() in same.data
    assert _codes_sent(db) == 0


def test_asking_again_at_once_waits_for_the_cooldown(flow, db):
    flow.code()
    assert _ask(flow).status_code == 303
    again = _ask(flow)
    # The form again, the address as typed, and on its field when a new code may be asked.
    assert again.status_code == 400
    assert b'id="email-error"' in again.data and b"secondes" in again.data
    assert b"Vous pourrez en demander un nouveau dans" in again.data
    assert f'value="{NEW_ADDRESS}"'.encode() in again.data
    assert _codes_sent(db) == 1


def test_a_corrected_address_gets_its_code_at_once(app, flow, db):
    # The cooldown is the same address's: a typing mistake corrected is not made to wait. The
    # first address's code, typed after, is said replaced.
    flow.code()
    assert _ask(flow, address="jeanne.nouvele@example.net").status_code == 303
    first_code = last_code(app, template="email_code")
    corrected = _ask(flow)
    assert corrected.status_code == 303 and corrected.headers["Location"].endswith("/account/email/confirm")
    assert NEW_ADDRESS.encode() in flow.http.get(corrected.headers["Location"]).data
    assert _codes_sent(db) == 2
    replaced = _confirm(flow, first_code)
    assert replaced.status_code == 400
    assert "Ce code a été remplacé par celui envoyé par e-mail.".encode() in replaced.data

    assert _confirm(flow, last_code(app, template="email_code")).status_code == 303
    db.expire_all()
    assert db.get(Account, flow.account.id).email == NEW_ADDRESS


def test_the_pages_need_a_signed_in_member(client):
    for path in ("/malakoff/account/email", "/malakoff/account/email/confirm"):
        response = client.get(path)
        assert response.status_code == 303

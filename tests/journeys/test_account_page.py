"""The member's account page: password, mobile, sign-ins, deletion (SPEC §6)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.events import AuditEvent
from idp.mfa.models import TrustedDevice
from tests.factories import PASSWORD
from tests.flows import Flow, code_asked_again_while_held_back, csrf_token, query

NEW_PASSWORD = "Bruyere-Monts-Arree-29!"


def _change(flow, current=PASSWORD, new=NEW_PASSWORD, confirm=None):
    page = flow.http.get("/malakoff/account/password")
    assert page.status_code == 200
    return flow.http.post("/malakoff/account/password", data={
        "current_password": current, "password": new, "password_confirm": confirm or new,
        "csrf_token": csrf_token(page.data)})


def test_change_password_keeps_this_session_and_ends_the_others(app, flow, db):
    flow.login(flow.authorize(), remember=True)
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    other.code()
    tokens = flow.token(query(flow.authorize().headers["Location"])["code"]).json
    done = _change(flow)
    assert done.status_code == 303 and "changed=password" in done.headers["Location"]
    assert "Votre mot de passe est changé".encode() in flow.http.get(done.headers["Location"]).data

    # This browser is still signed in; the other one is not; tokens and devices are gone.
    assert "code" in query(flow.authorize(prompt="none").headers["Location"])
    assert query(other.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 401
    assert db.scalar(select(func.count()).select_from(TrustedDevice)
                     .where(TrustedDevice.revoked_at.is_(None))) == 0
    assert db.scalar(select(func.count()).select_from(Message)
                     .where(Message.template == "password_changed")) == 1
    # The new password signs in; the old one does not.
    assert other.login(other.authorize(prompt="login")).status_code == 401
    fresh = other.login(other.authorize(prompt="login"), password=NEW_PASSWORD)
    assert "code" in query(fresh.headers["Location"])


def test_a_wrong_current_password_changes_nothing(flow, db):
    flow.code()
    response = _change(flow, current="not-my-password")
    assert response.status_code == 400
    assert b"Mot de passe actuel incorrect." in response.data
    assert "code" in query(flow.authorize(prompt="none").headers["Location"])


def test_the_new_password_must_follow_the_rules(flow):
    flow.code()
    assert _change(flow, new="azerty123").status_code == 400
    assert _change(flow, confirm="Something-Else-99!").status_code == 400


def test_the_page_needs_a_signed_in_member(client):
    response = client.get("/malakoff/account/password")
    assert response.status_code == 303 and response.headers["Location"].endswith("/malakoff/login")


def test_recent_sign_ins_are_listed(flow):
    flow.code()
    flow.login(flow.authorize(prompt="login"))
    page = flow.http.get("/malakoff/account").data.decode()
    assert "Connexions récentes" in page
    assert page.count("<tr><td>") == 2


def _delete(flow, password=PASSWORD, confirm=True):
    page = flow.http.get("/malakoff/account/delete")
    data = {"current_password": password, "csrf_token": csrf_token(page.data)}
    if confirm:
        data["confirm"] = "y"
    return flow.http.post("/malakoff/account/delete", data=data)


def test_deleting_the_account_needs_the_password_and_ends_everything(flow, db):
    account_id, identifier = flow.account.id, flow.identifier
    tokens = flow.tokens()
    assert _delete(flow, password="wrong").status_code == 400
    assert _delete(flow, confirm=False).status_code == 400
    assert db.get(Account, account_id) is not None

    done = _delete(flow)
    assert done.status_code == 303 and done.headers["Location"].endswith("/malakoff/account/deleted")
    db.expunge_all()
    assert db.get(Account, account_id) is None
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == "account:delete"))
    assert event.account_id == account_id
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 401
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert flow.login(flow.authorize(), identifier=identifier).status_code == 401


def _new_mobile(flow, number="07 81 99 88 77", password=PASSWORD):
    page = flow.http.get("/malakoff/account/mobile")
    return flow.http.post("/malakoff/account/mobile", data={
        "current_password": password, "mobile": number, "csrf_token": csrf_token(page.data)})


def _sms_code(db) -> str:
    db.expire_all()
    message = db.scalars(select(Message).where(Message.template == "mobile_change")
                         .order_by(Message.id.desc())).first()
    return re.search(r"\d{6}", message.body_text)[0]


def _confirm(flow, code):
    page = flow.http.get("/malakoff/account/mobile/confirm")
    return flow.http.post("/malakoff/account/mobile/confirm",
                          data={"code": code, "csrf_token": csrf_token(page.data)})


def test_a_new_code_withdraws_the_one_still_held_back(flow, db, monkeypatch):
    flow.code()
    assert code_asked_again_while_held_back(
        db, monkeypatch, "mobile_change", lambda: _new_mobile(flow),
        lambda: _new_mobile(flow, number="07 81 99 88 66")) == ["expired", "sent"]


def test_a_new_mobile_is_proven_by_an_sms_code_and_the_email_is_told(flow, db):
    flow.code()
    sent = _new_mobile(flow)
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/account/mobile/confirm")
    code_page = flow.http.get(sent.headers["Location"]).data
    assert "+33\u00a07\u00a0••\u00a0••\u00a0••\u00a077".encode() in code_page
    assert _confirm(flow, "000000" if _sms_code(db) != "000000" else "111111").status_code == 400
    done = _confirm(flow, _sms_code(db))
    assert done.status_code == 303 and "changed=mobile" in done.headers["Location"]
    db.expire_all()
    account = db.get(Account, flow.account.id)
    assert account.phone_number == "+33781998877" and account.phone_number_verified
    notice = db.scalar(select(Message).where(Message.template == "mobile_changed"))
    assert notice.recipient == flow.account.email and "77" in notice.body_text


def test_changing_the_mobile_needs_the_password_and_a_mobile_number(flow, db):
    flow.code()
    assert _new_mobile(flow, password="wrong").status_code == 400
    assert _new_mobile(flow, number="01 45 67 89 10").status_code == 400
    assert db.scalar(select(Message).where(Message.template == "mobile_change")) is None
    assert flow.http.get("/malakoff/account/mobile/confirm").status_code == 303

"""Email-as-login migration of Malakoff's legacy accounts, over HTTP (SPEC §7)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.events import AuditEvent
from tests.factories import PASSWORD, tenants_in_phase
from tests.flows import Flow, csrf_token, last_code, query, sign_in_over, without_csrf_tokens


@pytest.fixture
def phase() -> str:
    return "open"


@pytest.fixture
def settings(settings, tmp_path, phase):
    return {**settings, "tenants_dir": tenants_in_phase(tmp_path / "tenants", phase)}


@pytest.fixture
def legacy(make):
    return make.account("malakoff", legacy_login=True)


@pytest.fixture
def legacy_flow(client, rp, legacy):
    return Flow(client, "malakoff", rp, legacy)


def _password(flow, identifier):
    """Authorize and give identifier + password; the answer to the password form."""
    page, interaction = flow.sign_in_page(flow.authorize())
    return flow.http.post("/malakoff/login", data={
        "interaction": interaction,
        "identifier": identifier, "password": PASSWORD, "csrf_token": csrf_token(page.data)})


def _to_update_page(flow, channel="email"):
    """Member number + password + code: the sign-in ends on "update my login identifier"."""
    posted = _password(flow, flow.account.member_number)
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    done = flow.second_factor(channel=channel)
    assert done.status_code == 303 and done.headers["Location"].endswith("/malakoff/login/update-identifier")
    return flow.http.get(done.headers["Location"])


def _submit_email(flow, page, address):
    return flow.http.post("/malakoff/login/update-identifier",
                          data={"email": address, "csrf_token": csrf_token(page.data)})


def _enter_code(flow, code):
    page = flow.http.get("/malakoff/login/update-identifier/code")
    return flow.http.post("/malakoff/login/update-identifier/code",
                          data={"code": code, "csrf_token": csrf_token(page.data)})


def _account(db, account_id) -> Account:
    db.expire_all()
    return db.get(Account, account_id)


def test_confirming_the_address_that_got_the_code_migrates_at_once(app, legacy_flow, db):
    page = _to_update_page(legacy_flow, channel="email")
    assert page.status_code == 200
    assert f'value="{legacy_flow.account.email}"'.encode() in page.data
    assert "il vous reste 15\u00a0minutes pour terminer votre connexion.".encode() in page.data
    assert b'class="deadline"' in page.data and b'src="/static/deadline.js"' in page.data
    done = _submit_email(legacy_flow, page, legacy_flow.account.email)
    # No second code: the sign-in's code already went to this address. Back to the portal.
    assert done.status_code == 303 and done.headers["Location"].startswith(legacy_flow.rp.redirect_uris[0])
    assert "code" in query(done.headers["Location"])
    account = _account(db, legacy_flow.account.id)
    assert not account.legacy_login and account.login_migrated_at is not None and account.email_verified
    assert db.scalar(select(func.count()).select_from(Message)
                     .where(Message.template == "email_code")) == 0
    assert db.scalar(select(AuditEvent).where(AuditEvent.tag == "account:migration:done")) is not None

    # From now on: the email only.
    other = Flow(app.test_client(), "malakoff", legacy_flow.rp, account)
    refused = _password(other, account.member_number)
    assert refused.status_code == 401
    assert "votre numéro d’adhérent ne sert plus".encode() in refused.data
    assert "code=" in other.login(other.authorize(), identifier=account.email).headers["Location"]


def test_after_an_sms_code_the_email_is_proven_by_its_own_code(app, legacy_flow, db):
    page = _to_update_page(legacy_flow, channel="sms")
    sent = _submit_email(legacy_flow, page, legacy_flow.account.email)
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/update-identifier/code")
    code = last_code(app, template="email_code")
    wrong = _enter_code(legacy_flow, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 400 and b"Code incorrect" in wrong.data
    assert _account(db, legacy_flow.account.id).legacy_login
    done = _enter_code(legacy_flow, code)
    assert done.status_code == 303 and "code" in query(done.headers["Location"])
    assert not _account(db, legacy_flow.account.id).legacy_login


def test_another_address_is_proven_and_the_old_one_is_told(app, legacy_flow, db):
    old_address = legacy_flow.account.email
    page = _to_update_page(legacy_flow)
    sent = _submit_email(legacy_flow, page, "c.nouvelle@example.net")
    assert sent.status_code == 303
    message = db.scalar(select(Message).where(Message.template == "email_code"))
    assert message.recipient == "c.nouvelle@example.net"
    assert _enter_code(legacy_flow, last_code(app, template="email_code")).status_code == 303
    account = _account(db, legacy_flow.account.id)
    assert account.email == "c.nouvelle@example.net" and not account.legacy_login
    notice = db.scalar(select(Message).where(Message.template == "email_changed"))
    assert notice.recipient == old_address


def test_an_address_used_by_another_account_is_refused(legacy_flow, make, db):
    taken = make.account("malakoff", email="deja.pris@example.org")
    page = _to_update_page(legacy_flow)
    response = _submit_email(legacy_flow, page, taken.email)
    assert response.status_code == 409
    assert "déjà celle d’un autre compte".encode() in response.data
    assert _account(db, legacy_flow.account.id).legacy_login


def test_a_bad_address_is_refused_and_changes_nothing(legacy_flow, db):
    page = _to_update_page(legacy_flow)
    for address in ("", "pas-une-adresse", "a@b", "x" * 250 + "@example.org"):
        assert _submit_email(legacy_flow, page, address).status_code == 400
    assert _account(db, legacy_flow.account.id).legacy_login


def test_the_page_needs_a_legacy_sign_in_in_progress(client, flow):
    assert client.get("/malakoff/login/update-identifier").status_code == 400
    assert client.get("/malakoff/login/update-identifier/code").status_code == 400
    # A member who already signs in with the email never sees it.
    assert "code" in query(flow.sign_in().headers["Location"])
    sign_in_over(flow.http.get("/malakoff/login/update-identifier"))


def test_a_migrated_account_is_not_asked_again(legacy_flow, db):
    page = _to_update_page(legacy_flow)
    _submit_email(legacy_flow, page, legacy_flow.account.email)
    account = _account(db, legacy_flow.account.id)
    again = legacy_flow.login(legacy_flow.authorize(prompt="login"), identifier=account.email)
    assert "code" in query(again.headers["Location"])


def test_a_wrong_password_on_a_member_number_counts_as_a_failed_legacy_sign_in(legacy_flow, db):
    response = legacy_flow.login(legacy_flow.authorize(), identifier=legacy_flow.account.member_number,
                                 password="Wrong-Password-1!")
    assert response.status_code == 401
    tags = db.scalars(select(AuditEvent.tag)).all()
    assert "account:login:legacy-failure" in tags and "account:login:failure" not in tags


@pytest.mark.parametrize("phase", ["before"])
def test_before_the_start_date_legacy_sign_ins_are_unchanged(legacy_flow, db):
    posted = _password(legacy_flow, legacy_flow.account.member_number)
    done = legacy_flow.second_factor()
    assert posted.status_code == 303 and "code" in query(done.headers["Location"])
    assert _account(db, legacy_flow.account.id).legacy_login


@pytest.mark.parametrize("phase", ["closed"])
def test_after_the_cutoff_member_numbers_are_refused_with_a_way_out(legacy_flow, db):
    for number in (legacy_flow.account.member_number, "99999999"):
        response = _password(legacy_flow, number)
        assert response.status_code == 403
        page = response.data.decode()
        assert "identifiant est désormais votre adresse e-mail" in page
        assert 'href="/malakoff/forgot-identifier"' in page
    # Right password or not, the same answer: nothing was checked.
    assert db.scalar(select(func.count()).select_from(AuditEvent)
                     .where(AuditEvent.tag == "account:login:legacy-refused")) == 2
    assert db.scalar(select(func.count()).select_from(AuditEvent)
                     .where(AuditEvent.tag.like("account:login:%"),
                            AuditEvent.tag != "account:login:legacy-refused")) == 0


@pytest.mark.parametrize("phase", ["closed"])
def test_after_the_cutoff_the_email_on_file_still_leads_through_the_move(legacy_flow, db):
    posted = _password(legacy_flow, legacy_flow.account.email)
    done = legacy_flow.second_factor(channel="email")
    assert posted.status_code == 303
    assert done.headers["Location"].endswith("/malakoff/login/update-identifier")
    page = legacy_flow.http.get(done.headers["Location"])
    assert _submit_email(legacy_flow, page, legacy_flow.account.email).status_code == 303
    assert not _account(db, legacy_flow.account.id).legacy_login


def _remind(client, number):
    page = client.get("/malakoff/forgot-identifier")
    assert page.status_code == 200
    return client.post("/malakoff/forgot-identifier", follow_redirects=True,
                       data={"member_number": number, "csrf_token": csrf_token(page.data)})


def test_forgot_identifier_writes_to_the_address_on_file(client, legacy, db):
    known = _remind(client, legacy.member_number)
    unknown = _remind(client, "99999999")
    assert known.status_code == unknown.status_code == 200
    assert without_csrf_tokens(known).replace(legacy.member_number.encode(), b"N") == \
        without_csrf_tokens(unknown).replace(b"99999999", b"N")
    messages = db.scalars(select(Message).where(Message.template == "identifier_email")).all()
    assert [m.recipient for m in messages] == [legacy.email]
    assert legacy.email in messages[0].body_text
    assert _remind(client, "123").status_code == 400

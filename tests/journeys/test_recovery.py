"""Forgot password and forgot identifier (SPEC §6): same answers whatever the identifier,
single-use links tied to the current password, and everything the old password opened ends."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import select

from idp import create_app
from idp.accounts.models import Account, RecoveryRequest
from idp.channels.models import Message
from idp.events import RESET_REQUESTED, AuditEvent
from idp.registry.models import Member
from idp.wiring import worker_tasks
from tests.conftest import DATABASE_URL, IdpCliRunner
from tests.conftest import _reset as _empty_stores
from tests.factories import Factories
from tests.flows import Flow, csrf_token, query

NEW_PASSWORD = "Lavande-Valensole-83!"


def _mails(db, template):
    db.expire_all()
    return db.scalars(select(Message).where(Message.template == template).order_by(Message.id)).all()


def _ask(client, tenant, identifier):
    """The request, and the page it leads to."""
    page = client.get(f"/{tenant}/forgot-password")
    return client.post(f"/{tenant}/forgot-password", follow_redirects=True,
                       data={"identifier": identifier, "csrf_token": csrf_token(page.data)})


def _link(db, tenant="malakoff"):
    return re.search(rf"http://localhost(/{tenant}/reset-password/\S+)",
                     _mails(db, "password_reset")[-1].body_text)[1]


def _reset(client, path, password=NEW_PASSWORD):
    page = client.get(path)
    return client.post(path, data={"password": password, "password_confirm": password,
                                   "csrf_token": csrf_token(page.data)})


def test_reset_ends_old_sessions_and_tokens_and_the_new_password_works(app, client, db, flow):
    tokens = flow.tokens()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    other_browser = app.test_client()
    answer = _ask(other_browser, "malakoff", flow.account.email)
    assert b"Si un compte correspond" in answer.data
    done = _reset(other_browser, _link(db))
    assert done.status_code == 303
    told = other_browser.get(done.headers["Location"]).data.decode()
    assert "vos sessions sont fermées sur tous vos appareils" in told

    assert client.get("/malakoff/userinfo", headers=bearer).status_code == 401
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert flow.login(flow.authorize()).status_code == 401  # the old password
    response = flow.login(flow.authorize(), password=NEW_PASSWORD)
    assert "code" in query(response.headers["Location"])
    assert _mails(db, "password_changed")[0].recipient == flow.account.email


def test_the_link_is_single_use_and_expires(app, client, db, flow, monkeypatch):
    _ask(client, "malakoff", flow.account.email)
    path = _link(db)
    assert _reset(client, path).status_code == 303
    assert client.get(path).status_code == 400  # the password changed: the link is dead
    _ask(client, "malakoff", flow.account.email)
    later = time.time() + 31 * 60
    monkeypatch.setattr(time, "time", lambda: later)
    expired = client.get(_link(db))
    assert expired.status_code == 400 and b"plus valable" in expired.data


def _without_the_time(page: bytes) -> bytes:
    """The page without its CSRF tokens and the seconds its session has left."""
    return re.sub(rb'[\w-]+\.[\w-]+\.[\w-]{20,}|data-deadline="\d+"', b"", page)


def test_unknown_identifiers_get_the_same_answer_and_no_email(client, db, flow):
    known = _ask(client, "malakoff", flow.account.email)
    unknown = _ask(client, "malakoff", "nobody@example.org")
    assert known.status_code == unknown.status_code == 200
    # The pages differ only by the second they were made in: their CSRF tokens carry it, and
    # their countdown of the session's time left.
    assert _without_the_time(known.data) == _without_the_time(unknown.data)
    assert len(_mails(db, "password_reset")) == 1


def test_requests_are_limited_per_identifier(client, db, flow):
    for _ in range(5):
        assert _ask(client, "malakoff", flow.account.email).status_code == 200
    assert len(_mails(db, "password_reset")) == 3


def test_a_reset_unlocks_a_locked_sign_in(app, client, db, flow):
    for _ in range(5):
        flow.login(flow.authorize(), password="wrong")
    assert flow.login(flow.authorize()).status_code == 429
    _ask(app.test_client(), "malakoff", flow.account.email)
    _reset(app.test_client(), _link(db))
    response = flow.login(flow.authorize(), password=NEW_PASSWORD)
    assert "code" in query(response.headers["Location"])


def test_weak_passwords_are_refused_on_reset(client, db, flow):
    before = flow.account.password_hash
    _ask(client, "malakoff", flow.account.email)
    weak = _reset(client, _link(db), password="jeanne1958")
    assert weak.status_code == 400
    db.expire_all()
    assert db.get(Account, flow.account.id).password_hash == before


@pytest.fixture
def miel_member(db, make):
    db.add(Member(tenant="miel", member_number="76543210", nir="262082A00403607",
                  last_name="N'DIAYE", first_name="Françoise", birth_date=date(1962, 8, 30),
                  role="principal", kind="health", status="active"))
    db.commit()
    return make.account("miel", member_number="76543210", email="f.ndiaye@example.org",
                        given_name="Françoise", family_name="N'DIAYE", birthdate=date(1962, 8, 30))


def _forgot_identifier(client, **overrides):
    page = client.get("/miel/forgot-identifier")
    data = {"nir": "262082A00403607", "birth_date": "30/08/1962", "birth_department": "2A",
            "last_name": "N'Diaye", "first_name": "Françoise", "csrf_token": csrf_token(page.data)}
    data.update(overrides)
    return client.post("/miel/forgot-identifier", data=data)


def test_a_miel_member_gets_their_member_number_by_email(client, db, miel_member):
    answer = _forgot_identifier(client)
    assert answer.status_code == 303 and answer.headers["Location"] == "/miel/forgot-identifier/sent"
    assert b"Consultez votre messagerie" in client.get(answer.headers["Location"]).data
    mail = _mails(db, "identifier")[0]
    assert mail.recipient == "f.ndiaye@example.org" and "76543210" in mail.body_text


def test_forgot_identifier_answers_the_same_for_a_near_miss(client, db, miel_member):
    answer = _forgot_identifier(client, first_name="Francoisse")
    assert answer.headers["Location"] == "/miel/forgot-identifier/sent"
    assert _mails(db, "identifier") == []


def test_forgot_identifier_checks_the_nir_like_registration(client, db, miel_member):
    answer = _forgot_identifier(client, birth_department="75")
    assert answer.status_code == 400
    assert _mails(db, "identifier") == []


def test_miel_reset_by_member_number(app, client, db, make):
    member = make.account("miel")
    _ask(client, "miel", member.member_number)
    assert _mails(db, "password_reset") == []  # no email on this account: nothing can be sent
    with_email = make.account("miel", email="adherent@example.org")
    _ask(client, "miel", with_email.member_number)
    assert _reset(client, _link(db, "miel")).status_code == 303
    flow = Flow(app.test_client(), "miel", make.client("miel"), with_email)
    assert "code" in query(flow.login(flow.authorize(), password=NEW_PASSWORD).headers["Location"])


@pytest.fixture
def worker_app(settings):
    """Production's delivery: nothing is sent or looked up during the request."""
    app = create_app({**settings, "message_delivery": "worker"})
    yield app
    _empty_stores(app)


def test_the_request_leads_to_a_page_of_its_own_whose_reload_asks_nothing_again(client, db, flow):
    page = client.get("/malakoff/forgot-password")
    assert 'href="/malakoff/login"' in page.get_data(as_text=True)

    asked = client.post("/malakoff/forgot-password",
                        data={"identifier": flow.account.email, "csrf_token": csrf_token(page.data)})

    assert asked.status_code == 303 and asked.headers["Location"] == "/malakoff/forgot-password/sent"
    for _ in range(2):  # the page, then a reload of it
        sent = client.get(asked.headers["Location"]).get_data(as_text=True)
        assert "Consultez votre messagerie" in sent
        assert 'href="/malakoff/forgot-password">Je n’ai rien reçu\u00a0: demander un nouveau lien' in sent
        assert 'href="/malakoff/login"' in sent
    assert len(_mails(db, "password_reset")) == 1


def test_the_page_records_the_request_and_the_worker_sends_the_link_after_it(worker_app):
    database = worker_app.extensions["idp"].database
    with database.session() as db:
        account = Factories(worker_app, db).account("malakoff")
        browser = worker_app.test_client()
        token = csrf_token(browser.get("/malakoff/forgot-password?lang=en").data)
        for identifier in (account.email, "nobody@example.org"):
            answer = browser.post("/malakoff/forgot-password",
                                  data={"identifier": identifier, "csrf_token": token})
            assert answer.status_code == 303
        # Both requests did the same: recorded as typed, nothing looked up, nothing queued.
        assert db.scalars(select(RecoveryRequest.typed).order_by(RecoveryRequest.id)).all() == [
            {"identifier": account.email}, {"identifier": "nobody@example.org"}]
        assert _mails(db, "password_reset") == []
        assert db.scalar(select(AuditEvent).where(AuditEvent.tag == RESET_REQUESTED)) is None

        assert IdpCliRunner(worker_app).invoke(args=["outbox", "work", "--once"]).exit_code == 0

        [mail] = _mails(db, "password_reset")
        assert (mail.recipient, mail.status) == (account.email, "sent")
        assert mail.subject == "Reset your password"  # the language of the pages it was asked on
        assert db.scalars(select(RecoveryRequest)).all() == []  # nothing typed is kept
        assert db.scalar(select(AuditEvent.account_id).where(
            AuditEvent.tag == RESET_REQUESTED)) == account.id


def _record(db, kind: str, **typed) -> None:
    db.add(RecoveryRequest(tenant="malakoff", kind=kind, typed=typed, locale="fr"))
    db.commit()


def test_a_request_the_worker_cannot_carry_out_is_dropped_and_the_others_go_on(worker_app):
    database = worker_app.extensions["idp"].database
    with database.session() as db:
        account = Factories(worker_app, db).account("malakoff")
        _record(db, "reset")  # nothing typed: cannot be carried out
        _record(db, "reset", identifier=account.email)

        assert IdpCliRunner(worker_app).invoke(args=["outbox", "work", "--once"]).exit_code == 0

        assert [mail.recipient for mail in _mails(db, "password_reset")] == [account.email]
        assert db.scalars(select(RecoveryRequest)).all() == []


@pytest.mark.skipif(not DATABASE_URL, reason="concurrent workers claim requests with SKIP LOCKED, "
                    "which SQLite has not: set IDP_TEST_DATABASE_URL")
def test_concurrent_workers_carry_out_each_request_once(worker_app):
    services = worker_app.extensions["idp"]
    with services.database.session() as db:
        account = Factories(worker_app, db).account("malakoff")
        for _ in range(20):
            _record(db, "reset", identifier=account.email)

    def work() -> int:
        with worker_app.app_context(), services.database.session() as session:
            return len(worker_tasks(services, session))

    with ThreadPoolExecutor(max_workers=4) as pool:
        made = [future.result() for future in [pool.submit(work) for _ in range(4)]]

    assert sum(made) == 20
    with services.database.session() as db:
        assert len(_mails(db, "password_reset")) == 20
        assert db.scalars(select(RecoveryRequest)).all() == []

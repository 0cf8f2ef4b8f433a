"""The sign-in code's pages shown (GET) read nothing from the database: where the code can go is
kept with the pending sign-in, as the password step found it (or the last code sent). The wait
for the code's email reads its status outside transactions, each read one round trip with no
BEGIN and ROLLBACK around it. Choosing where the code goes (POST) still writes in one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from idp import create_app, events
from idp.channels.masking import mask_email
from tests.conftest import DATABASE_URL
from tests.conftest import _reset as _empty_stores
from tests.flows import Flow, csrf_token
from tests.flows import statements_run as statements

pytestmark = pytest.mark.skipif(
    not DATABASE_URL, reason="transactions as PostgreSQL's driver tells them (IDP_TEST_DATABASE_URL)")


def _at_the_code_pages(client, make) -> Flow:
    flow = Flow(client, "malakoff", make.client("malakoff"), make.account("malakoff"))
    assert flow.give_password().headers["Location"].endswith("/malakoff/login/code")
    return flow


def test_the_code_pages_shown_read_nothing_from_the_database(app, client, make):
    flow = _at_the_code_pages(client, make)
    with statements(app) as shown:
        choose = client.get("/malakoff/login/code")
    assert choose.status_code == 200
    assert mask_email(flow.account.email) in choose.get_data(as_text=True)
    assert shown == []
    with statements(app) as chosen:
        sent = client.post("/malakoff/login/code",
                           data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    assert sent.status_code == 303
    # The choice writes the message and its audit in the request's transaction.
    assert any(text.startswith("INSERT INTO messages") and not autocommit for text, autocommit in chosen)
    with statements(app) as shown:
        verify = client.get(sent.headers["Location"])
    assert verify.status_code == 200 and b'name="code"' in verify.data
    assert mask_email(flow.account.email) in verify.get_data(as_text=True)
    assert shown == []
    entered = client.post("/malakoff/login/code/verify",
                          data={"code": flow.last_code(), "csrf_token": csrf_token(verify.data)})
    assert entered.status_code == 303


def test_a_sign_in_pending_from_before_shows_the_pages_from_the_account(app, client, make):
    """A sign-in whose password step kept no destinations (a server of the previous version took
    it) reads them from the account, outside any transaction."""
    flow = _at_the_code_pages(client, make)
    with client.session_transaction() as session:
        entries = session["pending"]
        del entries["malakoff"]["reachable"]
        session["pending"] = entries
    with statements(app) as shown:
        choose = client.get("/malakoff/login/code")
    assert choose.status_code == 200
    assert mask_email(flow.account.email) in choose.get_data(as_text=True)
    assert [text.split(" ")[:2] for text, _ in shown] == [["SELECT", "accounts.id,"]]
    assert all(autocommit for _, autocommit in shown), shown


def test_a_sign_in_pending_from_a_newer_version_goes_on(client, make):
    """A sign-in whose password step a server of a newer version took (a deployment under way)
    holds a field this version does not know: the code pages go on without it."""
    flow = _at_the_code_pages(client, make)
    with client.session_transaction() as session:
        entries = session["pending"]
        entries["malakoff"]["kept_by_a_newer_version"] = {"any": "thing"}
        session["pending"] = entries
    choose = client.get("/malakoff/login/code")
    assert choose.status_code == 200
    assert mask_email(flow.account.email) in choose.get_data(as_text=True)
    sent = client.post("/malakoff/login/code",
                       data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    verify = client.get(sent.headers["Location"])
    entered = client.post("/malakoff/login/code/verify",
                          data={"code": flow.last_code(), "csrf_token": csrf_token(verify.data)})
    assert entered.status_code == 303


@pytest.fixture
def worker_app(settings):
    """Production's delivery, with no worker running: a code's message stays pending, and the
    page waits for it until the deadline."""
    app = create_app({**settings, "message_delivery": "worker", "message_sent_wait_ms": 100})
    yield app
    _empty_stores(app)


def test_the_wait_for_the_code_s_email_reads_its_status_outside_transactions(worker_app, make):
    app = worker_app
    client = app.test_client()
    _at_the_code_pages(client, make)
    choose = client.get("/malakoff/login/code")
    with statements(app) as chosen:
        sent = client.post("/malakoff/login/code",
                           data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    assert sent.status_code == 303 and "delayed=1" in sent.headers["Location"]
    polls = [autocommit for text, autocommit in chosen if text.startswith("SELECT messages.status")]
    assert len(polls) >= 2
    assert all(polls)


def test_a_code_s_message_and_its_audit_are_written_in_one_transaction(worker_app, make):
    """The message still pending (no worker), each row as its transaction wrote it: PostgreSQL
    gives a row the id of that transaction."""
    app = worker_app
    client = app.test_client()
    _at_the_code_pages(client, make)
    choose = client.get("/malakoff/login/code")
    sent = client.post("/malakoff/login/code",
                       data={"channel": "email", "csrf_token": csrf_token(choose.data)})
    assert sent.status_code == 303
    with app.extensions["idp"].database.engine.connect() as connection:
        message = connection.scalar(text("SELECT xmin::text FROM messages WHERE status = 'pending'"))
        audit = connection.scalar(text("SELECT xmin::text FROM audit_events WHERE tag = :tag"),
                                  {"tag": events.OTP_SENT})
    assert message is not None and audit == message

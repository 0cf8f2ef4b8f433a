"""Messages leave once the transaction that queued them commits, and only then."""

from __future__ import annotations

import time

from sqlalchemy import event, select

from idp import create_app
from idp.channels import dispatch
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.extensions import db, find_service
from tests.conftest import _reset

EMAIL = "jeanne.martin@example.org"


def _queue(app):
    tenant = app.extensions["idp"].tenants["malakoff"]
    return find_service(Messages).queue(tenant, "email", "password_changed", EMAIL,
                                        login_url="https://example.org/login")


def _statuses(app) -> list[str]:
    with app.extensions["idp"].database.session() as session:
        return list(session.scalars(select(Message.status)))


def test_a_message_leaves_when_its_transaction_commits(app):
    with app.test_request_context("/"):
        message = _queue(app)
        assert _statuses(app) == []  # not even visible before the commit
        assert find_service(Messages).delivered(message) is False
        db().commit()
        assert find_service(Messages).delivered(message) is True
    assert _statuses(app) == ["sent"]


def test_a_rolled_back_transaction_sends_nothing(app):
    with app.test_request_context("/"):
        _queue(app)
        db().rollback()
        db().commit()
    assert _statuses(app) == []


def test_a_session_of_its_own_leaves_delivery_to_the_worker(app):
    """Only the request's (or command's) session dispatches: the worker's, or a test's, does not."""
    with app.app_context(), app.extensions["idp"].database.session() as session:
        tenant = app.extensions["idp"].tenants["malakoff"]
        messages = app.extensions["idp"].channels.messages(session)
        messages.queue(tenant, "email", "password_changed", EMAIL, login_url="https://example.org/login")
        session.commit()
    assert _statuses(app) == ["pending"]


def test_a_page_reads_whether_its_message_left_soon_after_the_commit_then_less_often(settings):
    """Production's delivery: the worker sends; the page reads the message's status 5 ms after
    the commit (not at once: the worker has not been woken yet), then twice as long after each
    time, at most every 50 ms, until its wait ends."""
    app = create_app({**settings, "message_delivery": "worker", "message_sent_wait_ms": 300})
    reads: list[float] = []

    def read(*_args) -> None:
        reads.append(time.monotonic())

    engine = app.extensions["idp"].database.engine
    try:
        with app.test_request_context("/"):
            message = _queue(app)
            db().commit()
            committed = dispatch.committed_at(db(), message)
            event.listen(engine, "before_cursor_execute", read)
            try:
                assert find_service(Messages).delivered(message) is False  # no worker here
            finally:
                event.remove(engine, "before_cursor_execute", read)
    finally:
        _reset(app)
    gaps = [later - earlier for earlier, later in zip([committed, *reads], reads, strict=False)]
    # Each pause is counted from the end of the read before (a read's own time comes on top).
    for gap, pause in zip(gaps, [0.005, 0.01, 0.02, 0.04], strict=False):
        assert pause <= gap <= pause + 0.02
    assert all(0.05 <= gap <= 0.07 for gap in gaps[4:-1]) and gaps[-1] <= 0.07
    assert 0.3 <= reads[-1] - committed <= 0.4

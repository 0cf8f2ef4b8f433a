"""Messages leave once the transaction that queued them commits, and only then."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from idp import create_app
from idp.channels import dispatch, services
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


class _Clock:
    """``time.monotonic`` and ``time.sleep`` for code that waits: time passes only when it sleeps,
    so that the pauses it takes are measured exactly, whatever else the machine is doing."""

    def __init__(self, now: float):
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_a_page_reads_whether_its_message_left_soon_after_the_commit_then_less_often(settings, monkeypatch):
    """Production's delivery: the worker sends; the page reads the message's status 5 ms after
    the commit (not at once: the worker has not been woken yet), then twice as long after each
    time, at most every 50 ms, until its wait ends."""
    app = create_app({**settings, "message_delivery": "worker", "message_sent_wait_ms": 300})
    reads: list[float] = []
    engine = app.extensions["idp"].database.engine
    try:
        with app.test_request_context("/"):
            message = _queue(app)
            db().commit()
            committed = dispatch.committed_at(db(), message)
            clock = _Clock(committed)
            monkeypatch.setattr(services, "time", clock)

            def read(*_args) -> None:
                reads.append(clock.now)
                clock.now += 0.001  # a read's own time, which the next pause comes after

            event.listen(engine, "before_cursor_execute", read)
            try:
                assert find_service(Messages).delivered(message) is False  # no worker here
            finally:
                event.remove(engine, "before_cursor_execute", read)
    finally:
        _reset(app)
    gaps = [round(later - earlier, 6) for earlier, later in zip([committed, *reads], reads, strict=False)]
    # The first read 5 ms after the commit; each pause after the end of the read before, twice
    # the one before, 50 ms at most; the last one cut short by the end of the wait, 300 ms after
    # the commit.
    assert gaps[:5] == [0.005, 0.011, 0.021, 0.041, 0.051]
    assert set(gaps[5:-1]) == {0.051}
    assert 0 < gaps[-1] <= 0.051
    assert reads[-1] == pytest.approx(committed + 0.3)

"""`idp outbox`: the worker, the operators' list and retry."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from idp.channels.models import Message
from idp.channels.services import Messages

CODE = "482913"


def _message(db, *, status="pending", channel="email", recipient="jeanne@example.org",
             attempts=0, error=None, tenant="malakoff", expires_at=None) -> Message:
    now = datetime(2026, 3, 14, 9, 0)
    message = Message(
        tenant=tenant, channel=channel, template="otp_code", recipient=recipient,
        subject="Votre code de connexion" if channel == "email" else None,
        body_text=f"Votre code : {CODE}", body_html=None, status=status, attempts=attempts,
        last_error=error, created_at=now, next_attempt_at=now,
        sent_at=now if status == "sent" else None, expires_at=expires_at,
    )
    db.add(message)
    db.commit()
    return message


def _statuses(db) -> dict[int, tuple[str, int]]:
    db.expire_all()
    return {m.id: (m.status, m.attempts) for m in db.scalars(select(Message))}


def test_work_once_delivers_what_is_due(runner, db):
    first = _message(db)
    second = _message(db, channel="sms", recipient="+33612345688")
    result = runner.invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 2, delayed 0, failed 0" in result.output
    assert _statuses(db) == {first.id: ("sent", 1), second.id: ("sent", 1)}


def test_work_stops_cleanly_on_sigterm(runner, db):
    message = _message(db)
    original = signal.getsignal(signal.SIGTERM)
    delivered = threading.Event()

    def stop_when_delivered():
        session = runner.app.extensions["idp"].database.session()
        try:
            for _ in range(200):
                status = session.scalar(select(Message.status).where(Message.id == message.id))
                session.rollback()
                if status == "sent":
                    delivered.set()
                    break
                time.sleep(0.05)
        finally:
            session.close()
        # Only once the worker's handler is installed: the default one would end pytest.
        if signal.getsignal(signal.SIGTERM) is not original:
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=stop_when_delivered)
    killer.start()
    result = runner.invoke(args=["outbox", "work", "--interval", "0.1"])
    killer.join(15)
    assert delivered.is_set()
    assert result.exit_code == 0, result.output
    assert "SIGTERM received" in result.output
    assert result.output.rstrip().endswith("stopped")
    assert signal.getsignal(signal.SIGTERM) is original, "the previous handler is back"


def test_list_shows_no_content_and_masks_recipients(runner, db):
    failed = _message(db, status="failed", attempts=20, error="SMTP server relay:587 answered 451")
    sent = _message(db, status="sent", channel="sms", recipient="+33612345688", attempts=1)
    _message(db, tenant="miel")
    result = runner.invoke(args=["outbox", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "CREATED", "(UTC)"]
    assert len(lines) == 5
    assert CODE not in result.output
    assert "jeanne@example.org" not in result.output
    assert "+33612345688" not in result.output
    assert "j•••@example.org" in result.output
    assert "+336••••••88" in result.output
    assert "answered 451" in result.output
    assert lines[-1] == "pending: 1, sent: 1, failed: 1, expired: 0"

    only_failed = runner.invoke(args=["outbox", "list", "--status", "failed"]).output
    assert f"\n{failed.id} " in only_failed
    assert f"\n{sent.id} " not in only_failed
    miel = runner.invoke(args=["outbox", "list", "--tenant", "miel", "--status", "sent"]).output
    assert "no messages" in miel
    assert miel.splitlines()[-1] == "pending: 1, sent: 0, failed: 0, expired: 0"


@pytest.mark.parametrize(("args", "message"), [
    (["--status", "lost"], "Invalid value for '--status'"),
    (["--tenant", "acme"], "unknown tenant 'acme'"),
    (["--limit", "0"], "Invalid value for '--limit'"),
])
def test_list_refuses_bad_options(runner, args, message):
    result = runner.invoke(args=["outbox", "list", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_retry_all_failed(runner, db):
    one = _message(db, status="failed", attempts=20, error="down")
    two = _message(db, status="failed", attempts=20, error="down")
    sent = _message(db, status="sent", attempts=1)
    result = runner.invoke(args=["outbox", "retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    assert f"2 message(s) back in the queue: {one.id}, {two.id}" in result.output
    assert _statuses(db) == {one.id: ("pending", 0), two.id: ("pending", 0), sent.id: ("sent", 1)}
    again = runner.invoke(args=["outbox", "retry", "--all-failed"])
    assert again.exit_code == 0
    assert "no failed messages" in again.output


def test_retry_is_all_or_nothing(runner, db):
    failed = _message(db, status="failed", attempts=20, error="down")
    sent = _message(db, status="sent", attempts=1)
    before = _statuses(db)

    unknown = runner.invoke(args=["outbox", "retry", str(failed.id), "999999"])
    assert unknown.exit_code == 1
    assert "no message 999999; nothing was changed" in unknown.output
    already = runner.invoke(args=["outbox", "retry", str(failed.id), str(sent.id)])
    assert already.exit_code == 1
    assert f"message {sent.id} was already sent; nothing was changed" in already.output
    assert _statuses(db) == before


def test_work_once_drops_a_code_that_expired_while_it_waited(runner, db):
    ended = datetime(2026, 3, 14, 9, 3)  # long past: the code in it no longer works
    late = _message(db, attempts=3, error="down", expires_at=ended)
    timeless = _message(db)
    result = runner.invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 1, delayed 0, failed 0, expired 1" in result.output
    assert _statuses(db) == {late.id: ("expired", 3), timeless.id: ("sent", 1)}
    listed = runner.invoke(args=["outbox", "list", "--status", "expired"])
    assert listed.exit_code == 0
    assert f"{late.id} " in listed.output and f"{timeless.id} " not in listed.output
    assert "pending: 0, sent: 1, failed: 0, expired: 1" in listed.output


def test_retry_all_failed_marks_expired_codes_instead_of_requeueing_them(runner, db):
    ended = _message(db, status="failed", attempts=20, error="down", expires_at=datetime(2026, 3, 14, 9, 3))
    valid = _message(db, status="failed", attempts=20, error="down",
                     expires_at=datetime(2999, 1, 1))
    plain = _message(db, status="failed", attempts=20, error="down")
    result = runner.invoke(args=["outbox", "retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    assert f"1 message(s) not requeued, their code has expired: {ended.id}" in result.output
    assert f"2 message(s) back in the queue: {valid.id}, {plain.id}" in result.output
    assert _statuses(db) == {ended.id: ("expired", 20), valid.id: ("pending", 0), plain.id: ("pending", 0)}


def test_retry_by_id_refuses_an_expired_code(runner, db):
    failed = _message(db, status="failed", attempts=20, error="down")
    ended = _message(db, status="failed", attempts=20, error="down", expires_at=datetime(2026, 3, 14, 9, 3))
    before = _statuses(db)
    result = runner.invoke(args=["outbox", "retry", str(failed.id), str(ended.id)])
    assert result.exit_code == 1
    assert f"message {ended.id} carried a code that has expired; nothing was changed" in result.output
    assert _statuses(db) == before


@pytest.mark.parametrize("args", [
    ["retry", "2147483648"], ["retry", "99999999999999999999"], ["retry", "0"],
    ["work", "--once", "--interval", "nan"], ["work", "--once", "--interval", "inf"],
])
def test_numbers_beyond_what_they_count_are_usage_errors(runner, args):
    result = runner.invoke(args=["outbox", *args])

    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [[], ["1", "--all-failed"]])
def test_retry_needs_ids_or_all_failed(runner, args):
    result = runner.invoke(args=["outbox", "retry", *args])
    assert result.exit_code == 2
    assert "give message ids or --all-failed" in result.output


def test_every_outbox_command_has_help(runner):
    for command in ("work", "list", "retry"):
        result = runner.invoke(args=["outbox", command, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_work_once_reports_a_database_outage(runner, monkeypatch):
    def unreachable(*_args, **_kwargs):
        raise OperationalError("SELECT", {}, Exception("connection failed: Connection refused"))

    monkeypatch.setattr(Messages, "deliver_due", unreachable)
    result = runner.invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the database")
    assert "check that PostgreSQL runs" in result.output

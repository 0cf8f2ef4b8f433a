"""The queue: render per tenant, store, deliver once, retry with backoff, fail visibly."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from datetime import datetime, timedelta

import pytest
from jinja2 import ChoiceLoader, DictLoader, TemplateNotFound
from sqlalchemy import select, update

from idp.channels.models import Message
from idp.channels.senders import DeliveryError
from idp.channels.services import Batch, InvalidRecipient, MessageAlreadySent, Messages
from idp.extensions import find_service

CODE = "482913"
EMAIL = "jeanne.martin@example.org"
MOBILE = "+33612345688"


class Recording:
    """A sender that records what it was asked to send, or fails as told."""

    def __init__(self, error: Exception | None = None, delay: float = 0.0):
        self.error = error
        self.delay = delay
        self.sent: list[tuple] = []
        self.calls = 0
        self.lock = threading.Lock()

    def send(self, recipient, *parts):
        with self.lock:
            self.calls += 1
        if self.delay:
            threading.Event().wait(self.delay)
        if self.error is not None:
            raise self.error
        with self.lock:
            self.sent.append((recipient, *parts))


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def malakoff(app):
    return app.extensions["idp"].tenants["malakoff"]


@pytest.fixture
def miel(app):
    return app.extensions["idp"].tenants["miel"]


def _otp(messages, tenant, channel="email", recipient=EMAIL):
    return messages.queue(tenant, channel, "otp_code", recipient, code=CODE, ttl_minutes=3)


# -- queueing and rendering ---------------------------------------------------------------


def test_queue_renders_the_email_and_stores_it_pending_in_the_callers_transaction(
    app_ctx, db, channels, malakoff, clock
):
    messages = channels().messages(db)
    message = _otp(messages, malakoff)
    assert message.id is not None
    assert (message.tenant, message.channel, message.template, message.recipient) == (
        "malakoff", "email", "otp_code", EMAIL)
    assert message.subject == "Votre code de connexion"
    assert CODE in message.body_text
    assert CODE in message.body_html
    assert "3\u00a0minutes" in message.body_text
    assert "Malakoff Humanis ne vous demandera jamais ce code, ni par téléphone" in (
        message.body_text)
    assert "changez-le" in message.body_text.lower()
    assert message.body_html.startswith("<!DOCTYPE html>")
    assert (message.status, message.attempts) == ("pending", 0)
    assert message.created_at == message.next_attempt_at == clock.now
    db.rollback()  # the caller's transaction decides: rolled back, no message
    assert db.scalars(select(Message)).all() == []


def test_sms_text_is_short_and_names_the_brand(app_ctx, db, channels, malakoff, miel):
    messages = channels().messages(db)
    assert _otp(messages, malakoff, "sms", MOBILE).body_text == (
        f"{CODE} est votre code de connexion Malakoff Humanis, valable 3 min. "
        "Ne le donnez à personne, y compris à un conseiller.")
    sms = _otp(messages, miel, "sms", MOBILE)
    assert "code de connexion Miel mutuelle" in sms.body_text
    assert (sms.subject, sms.body_html) == (None, None)


def test_new_device_email(app_ctx, db, channels, miel):
    message = channels().messages(db).queue(
        miel, "email", "new_device", EMAIL, device="Firefox — Windows",
        when=datetime(2026, 3, 14, 8, 5), reset_url="https://id.example.org/miel/reset?t=a&b=<c>")
    assert message.subject == "Nouvelle connexion à votre Espace Affilié Miel mutuelle"
    # The time in Paris and in words (stored in UTC, 8:05 is 9 h 05 in March).
    for part in ("Firefox — Windows", "14 mars 2026 à 9\u00a0h\u00a005", "Miel mutuelle"):
        assert part in message.body_text
        assert part in message.body_html
    # Plain text keeps the link as is; HTML escapes it.
    assert "https://id.example.org/miel/reset?t=a&b=<c>" in message.body_text
    assert 'href="https://id.example.org/miel/reset?t=a&amp;b=&lt;c&gt;"' in message.body_html


def test_a_tenant_template_overrides_the_shared_one(app, app_ctx, db, channels, malakoff, miel):
    app.jinja_env.loader = ChoiceLoader([
        DictLoader({
            "malakoff/sms/otp_code.txt": "Malakoff Humanis : code {{ code }} ({{ tenant.slug }})",
            "malakoff/email/otp_code/subject.txt": "{{ tenant.brand }} : votre code",
        }),
        app.jinja_env.loader,
    ])
    messages = channels().messages(db)
    sms = _otp(messages, malakoff, "sms", MOBILE)
    assert sms.body_text == f"Malakoff Humanis : code {CODE} (malakoff)"
    email = _otp(messages, malakoff)
    assert email.subject == "Malakoff Humanis : votre code"
    assert "Malakoff Humanis ne vous demandera jamais" in email.body_text  # shared body
    assert _otp(messages, miel, "sms", MOBILE).body_text.startswith(f"{CODE} est votre code")


@pytest.mark.parametrize(("channel", "recipient"), [
    ("email", "not-an-address"), ("email", "a@b"), ("email", "jeanne@example.org\nBcc: x@y.z"),
    ("sms", "0612345688"), ("sms", "+33 6 12 34 56 88"), ("sms", EMAIL),
])
def test_bad_recipients_are_refused(app_ctx, db, channels, malakoff, channel, recipient):
    with pytest.raises(InvalidRecipient):
        _otp(channels().messages(db), malakoff, channel, recipient)
    assert db.scalars(select(Message)).all() == []


def test_unknown_channel_or_template(app_ctx, db, channels, malakoff):
    messages = channels().messages(db)
    with pytest.raises(ValueError, match="channel"):
        messages.queue(malakoff, "fax", "otp_code", EMAIL)
    with pytest.raises(TemplateNotFound):
        messages.queue(malakoff, "email", "no_such_template", EMAIL)


# -- delivery -------------------------------------------------------------------------------


def test_queue_then_send_now_over_smtp(app_ctx, db, channels, malakoff, smtp_server, clock):
    messages = channels(email_sender=smtp_server.sender()).messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    assert messages.send_now(message) is True
    assert (message.status, message.attempts, message.sent_at) == ("sent", 1, clock.now)
    [received] = smtp_server.inbox
    assert received.recipients == [EMAIL]
    assert received.message["Subject"] == "Votre code de connexion"
    assert CODE in received.message.get_body(("plain",)).get_content()
    assert CODE in received.message.get_body(("html",)).get_content()
    # Already sent: neither send_now nor deliver sends it again.
    assert messages.send_now(message) is True
    assert messages.deliver(message) is True
    assert len(smtp_server.inbox) == 1


def test_sms_goes_through_the_gateway(app_ctx, db, channels, malakoff, sms_gateway):
    sender = sms_gateway.sender()
    messages = channels(sms_sender=sender).messages(db)
    message = _otp(messages, malakoff, "sms", MOBILE)
    db.commit()
    assert messages.send_now(message) is True
    sender.close()
    [request] = sms_gateway.requests
    assert request.body["to"] == MOBILE
    assert request.body["text"] == message.body_text


def test_an_smtp_outage_delays_the_message_and_it_is_delivered_exactly_once(
    app_ctx, db, channels, malakoff, smtp_server, clock
):
    messages = channels(email_sender=smtp_server.sender()).messages(db)
    smtp_server.stop()
    message = _otp(messages, malakoff)
    db.commit()

    assert messages.send_now(message) is False
    db.expire_all()
    stored = db.get(Message, message.id)
    assert (stored.status, stored.attempts) == ("pending", 1)
    assert "cannot reach SMTP server" in stored.last_error
    assert stored.next_attempt_at == clock.now + timedelta(seconds=30)

    smtp_server.start()
    assert messages.deliver_due() == Batch(0, 0, 0), "not due before its backoff"
    clock.advance(30)
    assert messages.deliver_due() == Batch(1, 0, 0)
    assert messages.deliver_due() == Batch(0, 0, 0)
    assert len(smtp_server.inbox) == 1
    db.expire_all()
    stored = db.get(Message, message.id)
    assert (stored.status, stored.attempts, stored.sent_at) == ("sent", 2, clock.now)


def test_send_now_respects_a_workers_failed_attempt(app_ctx, db, channels, malakoff):
    failing = Recording(DeliveryError("SMTP server answered 421"))
    messages = channels(email_sender=failing).messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    assert messages.deliver_due() == Batch(0, 1, 0)  # the worker got it first and failed
    assert messages.send_now(message) is False
    assert failing.calls == 1, "the backoff applies to send_now too"


def test_backoff_doubles_up_to_one_hour(app_ctx, db, channels, malakoff, clock):
    messages = channels(email_sender=Recording(DeliveryError("down"))).messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    waits = []
    for _ in range(10):
        assert messages.deliver(message) is False
        waits.append(int((message.next_attempt_at - clock.now).total_seconds()))
        clock.advance(waits[-1])
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert (message.status, message.attempts) == ("pending", 10)


def test_after_max_attempts_the_message_fails_and_operators_can_retry_it(
    app, db, channels, malakoff, clock, runner
):
    settings = dataclasses.replace(app.extensions["idp"].settings, message_max_attempts=3)
    failing = Recording(DeliveryError("SMTP server relay.example.org:587 answered 451"))
    messages = channels(email_sender=failing, settings=settings).messages(db)
    with app.app_context():
        message = _otp(messages, malakoff)
    db.commit()

    results = []
    for _ in range(4):
        results.append(messages.deliver_due())
        clock.advance(3600)
    assert results == [Batch(0, 1, 0), Batch(0, 1, 0), Batch(0, 0, 1), Batch(0, 0, 0)]
    assert failing.calls == 3
    db.expire_all()
    failed = db.get(Message, message.id)
    assert (failed.status, failed.attempts) == ("failed", 3)

    listed = runner.invoke(args=["outbox", "list", "--status", "failed"])
    assert listed.exit_code == 0, listed.output
    assert f"{message.id} " in listed.output
    assert "j•••@example.org" in listed.output
    assert "answered 451" in listed.output
    assert EMAIL not in listed.output
    assert CODE not in listed.output
    assert "failed: 1" in listed.output

    retried = runner.invoke(args=["outbox", "retry", str(message.id)])
    assert retried.exit_code == 0, retried.output
    db.expire_all()
    back = db.get(Message, message.id)
    assert (back.status, back.attempts) == ("pending", 0)
    failing.error = None
    clock.now = back.next_attempt_at  # the command ran on the real clock: due from then
    assert messages.deliver_due() == Batch(1, 0, 0)
    assert len(failing.sent) == 1


def test_a_permanent_error_fails_at_once(app_ctx, db, channels, malakoff):
    failing = Recording(DeliveryError("SMTP server refused the recipient (550)", permanent=True))
    messages = channels(email_sender=failing).messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    assert messages.send_now(message) is False
    assert (message.status, message.attempts) == ("failed", 1)


def test_an_unexpected_error_is_recorded_without_its_text(app_ctx, db, channels, malakoff):
    failing = Recording(RuntimeError(f"boom {CODE}"))
    messages = channels(email_sender=failing).messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    assert messages.send_now(message) is False
    assert message.status == "pending"
    assert message.last_error == "unexpected error: RuntimeError"


def test_deliver_due_takes_the_oldest_first_and_stops_at_the_limit(
    app_ctx, db, channels, malakoff, clock
):
    recording = Recording()
    messages = channels(email_sender=recording, sms_sender=recording).messages(db)
    first = _otp(messages, malakoff, "sms", MOBILE)
    clock.advance(1)
    second = _otp(messages, malakoff)
    clock.advance(1)
    _otp(messages, malakoff, "sms", "+33698765432")
    db.commit()
    assert messages.deliver_due(limit=2) == Batch(2, 0, 0)
    assert [entry[0] for entry in recording.sent] == [first.recipient, second.recipient]
    assert messages.deliver_due(should_stop=lambda: True) == Batch(0, 0, 0)
    assert messages.deliver_due() == Batch(1, 0, 0)


def test_a_run_tries_each_message_once_even_when_its_backoff_ends_during_the_run(
    app_ctx, db, channels, malakoff, clock
):
    # Each reading of the clock an hour after the last: a failed message is due again at once.
    hours = itertools.count()
    failing = Recording(DeliveryError("SMTP server answered 421"))
    messages = dataclasses.replace(channels(email_sender=failing),
                                   clock=lambda: clock.now + timedelta(hours=next(hours))).messages(db)
    _otp(messages, malakoff)
    db.commit()
    assert messages.deliver_due(limit=10) == Batch(0, 1, 0)
    assert failing.calls == 1
    assert messages.deliver_due(limit=10) == Batch(0, 1, 0), "due again at the next run"
    assert failing.calls == 2


def test_a_run_reads_the_message_as_stored_not_as_its_session_last_saw_it(
    app, app_ctx, db, channels, malakoff
):
    failing = Recording(DeliveryError("SMTP server answered 421"))
    messages = channels(email_sender=failing).messages(db)
    held = _otp(messages, malakoff)
    db.commit()
    # Another worker tried it meanwhile; this session still holds it as it queued it.
    with app.extensions["idp"].database.engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == held.id).values(attempts=3))
    assert messages.deliver_due() == Batch(0, 1, 0)
    db.expire_all()
    assert db.get(Message, held.id).attempts == 4


def test_retry_refuses_a_sent_message(app_ctx, db, channels, malakoff):
    messages = channels().messages(db)
    message = _otp(messages, malakoff)
    db.commit()
    assert messages.send_now(message) is True
    with pytest.raises(MessageAlreadySent):
        messages.retry(message)


def test_logs_name_the_message_but_never_its_content(app_ctx, db, channels, malakoff, smtp_server,
                                                     clock, caplog):
    caplog.set_level(logging.DEBUG, logger="idp")
    messages = channels(email_sender=smtp_server.sender()).messages(db)
    delivered = _otp(messages, malakoff)
    db.commit()
    assert messages.send_now(delivered)
    smtp_server.stop()
    delayed = _otp(messages, malakoff, "email", "paul.durand@example.org")
    db.commit()
    assert not messages.send_now(delayed)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"message {delivered.id} sent" in logged
    assert f"message {delayed.id} delayed" in logged
    assert "j•••@example.org" in logged
    assert CODE not in logged
    assert EMAIL not in logged
    assert "paul.durand" not in logged


def test_the_outbox_backend_delivers_at_once_and_the_outbox_page_shows_it(
    app, client, db, malakoff
):
    with app.app_context():
        outgoing = find_service(Messages)
        message = _otp(outgoing, malakoff)
        outgoing.session.commit()
        assert outgoing.send_now(message) is True
    stored = db.get(Message, message.id)
    assert stored.status == "sent"
    page = client.get("/_outbox")
    assert CODE.encode() in page.data


# -- several workers (PostgreSQL row locks) ---------------------------------------------------


@pytest.fixture
def postgres(db):
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) need PostgreSQL: set IDP_TEST_DATABASE_URL")


def test_two_workers_never_send_the_same_message(app, app_ctx, db, channels, malakoff, postgres):
    recording = Recording(delay=0.005)
    built = channels(email_sender=recording)
    queued = [_otp(built.messages(db), malakoff, "email", f"member{i}@example.org")
              for i in range(30)]
    db.commit()
    database = app.extensions["idp"].database
    start = threading.Barrier(2)
    results, errors = [], []

    def worker():
        session = database.session()
        try:
            start.wait()
            results.append(built.messages(session).deliver_due())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    recipients = [entry[0] for entry in recording.sent]
    assert sorted(recipients) == sorted(message.recipient for message in queued)
    assert len(set(recipients)) == len(recipients) == 30
    assert sum(result.sent for result in results) == 30
    db.expire_all()
    assert {m.status for m in db.scalars(select(Message))} == {"sent"}


def test_send_now_waits_for_a_worker_holding_the_message(app, app_ctx, db, channels, malakoff,
                                                         postgres, clock):
    recording = Recording()
    built = channels(email_sender=recording)
    message = _otp(built.messages(db), malakoff)
    db.commit()
    worker = app.extensions["idp"].database.session()
    held = worker.scalars(select(Message).where(Message.id == message.id).with_for_update()).one()
    outcome = []
    request = threading.Thread(target=lambda: outcome.append(_send_now(app, built, message)))
    request.start()
    request.join(0.3)
    assert request.is_alive(), "send_now waits while a worker holds the row"
    held.status, held.attempts, held.sent_at = "sent", 1, clock.now  # the worker delivered it
    worker.commit()
    worker.close()
    request.join(10)
    assert outcome == [True]
    assert recording.calls == 0, "not sent a second time"


def _send_now(app, built, message) -> bool:
    session = app.extensions["idp"].database.session()
    try:
        return built.messages(session).send_now(message)
    finally:
        session.close()

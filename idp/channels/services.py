"""The message queue: emails, SMS and letters are stored first, then delivered with retries.

Request code queues a message in its own transaction (so the message exists
exactly when the change that caused it does); when that transaction commits,
the worker is woken (``idp.channels.dispatch``) and ``idp outbox work``
(``deliver_due``) sends it, retrying with exponential backoff until it is sent
or, after ``message_max_attempts``, marked "failed" for operators
(`idp outbox list --status failed`, `idp outbox retry`). An outage delays
messages; it never loses them.

Delivery is at least once: a message whose attempt succeeded but whose
status could not be saved (database gone at that instant) is sent again.
Two workers never send the same message concurrently: on PostgreSQL each
claims one row at a time with ``SELECT … FOR UPDATE SKIP LOCKED`` and holds
the lock while sending.

Each message is written in one language, chosen by ``Messages.locale_for``:
the pages' language for the person making the request, the stored language
of a member who is not (commands, operators' decisions, someone else's
request), the tenant's default otherwise.

Message bodies carry one-time codes and links: nothing here logs them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from jinja2 import TemplateNotFound
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from idp import events
from idp.channels import dispatch
from idp.channels.models import CHANNELS, Message
from idp.channels.senders import (
    DeliveryError,
    EmailSender,
    LetterSender,
    LogoutSender,
    OutboxLetterSender,
    SmsSender,
    mask_recipient,
)
from idp.config import Settings
from idp.db import load, statements_beside, utcnow, write
from idp.frames import Frame, marks
from idp.identifiers import is_email
from idp.metrics import DELIVERIES
from idp.registry.postal import InvalidAddress, PostalAddress, parse_lines
from idp.tenancy import LOCALES, Tenant

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# render(candidate_template_names, locale, context) -> str: the first name that exists wins,
# rendered in ``locale``.
Render = Callable[..., str]
# The language of the pages of the request being served; None outside a request.
CurrentLocale = Callable[[], str | None]

MAX_BACKOFF = timedelta(hours=1)
SUBJECT_MAX_LENGTH = 200
ERROR_MAX_LENGTH = 500
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Where letters are dated from: their date is the day there when they are written.
LETTER_TIMEZONE = ZoneInfo("Europe/Paris")
# How often ``delivered`` reads a message's status while it waits for the worker: soon after
# the commit at first (the worker most often sends a code within milliseconds), then each time
# twice as long after, up to the longest.
SENT_POLL_FIRST_SECONDS = 0.005
SENT_POLL_SECONDS = 0.05


# The frames a process keeps at most: a few messages', for each tenant and language, made anew
# each day.
MAX_FRAMES = 64
# The frames of messages (``Messages.queue``'s ``framed``): (subject, text, HTML), each None when
# the message has none.
Frames = dict[tuple[Any, ...], tuple["Frame | None", "Frame", "Frame | None"]]


class Written(NamedTuple):
    """A message's text: its subject (None for an SMS), its text, its HTML (an email's, if any)."""

    subject: str | None
    body_text: str
    body_html: str | None


class Reader(Protocol):
    """A member a message is for who may not be the one making the request: an account, a
    pending registration. ``locale`` is the language stored for them (None: never known)."""

    locale: str | None


class InvalidRecipient(ValueError):
    """Not an email address (email), not an E.164 number (SMS) or not a postal address's
    window lines (letter): the caller's mistake."""


class MessageAlreadySent(Exception):
    """A sent message cannot be put back in the queue."""


class MessageExpired(Exception):
    """The message carried something (a one-time code) that is no longer valid."""


class Batch(NamedTuple):
    """What one ``deliver_due`` run did."""

    sent: int
    still_pending: int
    failed: int
    expired: int = 0


# The oldest message due by ``due``, locked. PostgreSQL: rows another worker holds are skipped,
# not waited for. SQLite has no row locks; SQLAlchemy leaves FOR UPDATE out there (a
# single-process set-up: the demo and tests). Built once, and run prepared (``load``): the
# worker runs it twice a wake-up, the second time to find nothing more.
_DUE = (
    select(*Message.__table__.columns)
    .where(Message.status == "pending", Message.next_attempt_at <= bindparam("due"))
    .order_by(Message.created_at, Message.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
# A message queued (``_stored``), pending and due at once; run prepared (``load``).
_QUEUED = (insert(Message)
           .values({**{key: bindparam(key) for key in ("tenant", "channel", "template", "recipient",
                                                       "subject", "body_text", "body_html",
                                                       "created_at", "expires_at")},
                    "status": "pending", "attempts": 0, "next_attempt_at": bindparam("created_at")})
           .returning(*Message.__table__.columns))
# A message sent: what every message the worker delivers ends with.
_SENT = (update(Message).where(Message.id == bindparam("p_id"))
         .values(status="sent", attempts=Message.attempts + 1, sent_at=bindparam("p_now")))
# A message's status, read again and again while a page waits for it to be sent.
_STATUS = select(Message.status).where(Message.id == bindparam("id"))


class Messages:
    """Queues emails, SMS and letters in the database and delivers them, with retries.

    Collaborators come in through the constructor: the caller's database
    session, one sender per channel (letters: the outbox unless given), the
    settings (retry policy), a
    ``render(names, locale, context)`` callable that renders the first
    existing template of ``names`` in ``locale``, where to keep the frames of
    messages (``frames``: the app's; None, rendered whole each time), a ``current_locale()``
    callable giving the language of the request being served (None outside
    one), and a clock returning naive UTC.
    """

    def __init__(
        self,
        session: Session,
        *,
        email_sender: EmailSender,
        sms_sender: SmsSender,
        settings: Settings,
        render: Render,
        current_locale: CurrentLocale,
        clock: Clock = utcnow,
        letter_sender: LetterSender | None = None,
        logout_sender: LogoutSender | None = None,
        frames: Frames | None = None,
    ):
        self.session = session
        self.frames = frames
        self.email_sender = email_sender
        self.sms_sender = sms_sender
        self.letter_sender = letter_sender or OutboxLetterSender()
        self.logout_sender = logout_sender
        self.settings = settings
        self.render = render
        self.current_locale = current_locale
        self.clock = clock

    # -- queueing -------------------------------------------------------------

    def locale_for(self, tenant: Tenant, reader: Reader | None = None) -> str:
        """The language of a message, the one rule for all of them.

        Without ``reader`` the message is for the person making the current
        request: the language of the pages they see. With one (a member who
        may not be at the screen: a command, an operator's decision, someone
        else's request), the language stored for that member. Failing either,
        the tenant's default.
        """
        locale = reader.locale if reader is not None else self.current_locale()
        return locale if locale in LOCALES else tenant.default_locale

    def queue(
        self, tenant: Tenant, channel: str, template: str, recipient: str, *,
        reader: Reader | None = None, expires_at: datetime | None = None,
        framed: tuple[str, ...] = (), **context: Any
    ) -> Message:
        """Render ``template`` for ``tenant`` and store it as a pending message.

        Email: ``templates/email/<template>/{subject.txt, body.txt, body.html}``;
        SMS: ``templates/sms/<template>.txt``; letter:
        ``templates/letter/<template>/{subject.txt, body.txt}``, the body extending
        ``letter/layout.txt`` (sender, place and date; see ``idp.channels.letters``);
        a tenant's own version (``templates/<tenant>/email/…``, …) wins. A letter's
        ``recipient`` is ``str(PostalAddress)``, its window lines (``queue_letter``
        takes the address itself).
        The language is ``locale_for(tenant, reader)``. A message given
        ``expires_at`` (naive UTC: a one-time code's end) is never delivered
        after it: delayed past it, it is marked expired instead. The templates get
        ``tenant``, its ``brand`` and ``portal`` name (for ``{% trans %}``
        blocks, which take plain names), ``locale`` and ``context``.
        ``framed`` names the values of ``context`` the templates only write, as they are (a
        one-time code): the message is then filled in from frames (``idp.frames``) the app keeps
        once they are rendered, instead of rendering its templates each time. The
        message is added to the caller's transaction (flushed, so it has an
        id); once that transaction commits, the worker is woken to send it
        (``idp.channels.dispatch``; ``delivered`` tells whether it went). Must run
        inside an app context when the default (Flask) renderer is used.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        recipient = recipient.strip("\n") if channel == "letter" else recipient.strip()
        locale = self.locale_for(tenant, reader)
        now = self.clock()
        given = context
        context = {**given, "tenant": tenant, "brand": tenant.brand, "portal": tenant.portal_name,
                   "locale": locale, "support": tenant.support,
                   "today": now.replace(tzinfo=UTC).astimezone(LETTER_TIMEZONE).date()}
        if channel == "email" and not is_email(recipient):
            raise InvalidRecipient("not an email address")
        if channel == "letter":
            try:
                recipient = "\n".join(parse_lines(recipient))
            except InvalidAddress as exc:
                raise InvalidRecipient(f"not a postal address's window lines: {exc}") from None
        elif channel != "email" and not E164_RE.match(recipient):
            raise InvalidRecipient("not a phone number in E.164 form (+33612345678)")
        subject, body_text, body_html = self._written(tenant, channel, template, context, framed, given)
        message = _stored(self.session, tenant=tenant.slug, channel=channel, template=template,
                          recipient=recipient,
                          subject=None if subject is None else subject[:SUBJECT_MAX_LENGTH],
                          body_text=body_text, body_html=body_html, created_at=now, expires_at=expires_at)
        log.info("message %s queued: %s %s to %s (%s)", message.id, channel, template,
                 mask_recipient(channel, recipient), tenant.slug)
        return message

    def queue_letter(
        self, tenant: Tenant, template: str, address: PostalAddress | None, *,
        reader: Reader | None = None, expires_at: datetime | None = None, **context: Any
    ) -> Message:
        """Queue a letter to ``address`` (``Member.postal_address``): ``queue`` on the
        "letter" channel. No address (None: the registry's is incomplete) is an
        ``InvalidRecipient``, as is one that does not fit the window."""
        if address is None:
            raise InvalidRecipient("no postal address on file")
        try:
            lines = str(address)
        except InvalidAddress as exc:
            raise InvalidRecipient(f"not a postal address: {exc}") from None
        return self.queue(tenant, "letter", template, lines, reader=reader, expires_at=expires_at,
                          **context)

    def queue_code(
        self, tenant: Tenant, channel: str, template: str, recipient: str, *, code: str,
        valid_until: datetime, replaces: int | None = None
    ) -> Message:
        """Queue a one-time code's message, which ends with the code (``valid_until``).

        ``replaces``: the message of the code this one replaces (a resend, another channel);
        if it is still held back, it is withdrawn, so a member never gets a dead code late.
        """
        if replaces is not None:
            self.session.execute(
                update(Message)
                .where(Message.id == replaces, Message.status == "pending")
                .values(status="expired"))
        return self.queue(tenant, channel, template, recipient, code=code,
                          ttl_minutes=tenant.mfa.otp_ttl_seconds // 60, expires_at=valid_until,
                          framed=("code",))

    def _written(self, tenant: Tenant, channel: str, template: str, context: dict[str, Any],
                 framed: tuple[str, ...], given: dict[str, Any]) -> Written:
        """The message's text, from its frames when ``framed`` names its values and the app keeps
        frames (``frames``): its templates are then rendered once for each tenant, language, day
        and value of the rest of the caller's context (``given``), each a part of the frame's key."""
        if not framed or self.frames is None:
            return self._compose(tenant, channel, template, context)
        rest = tuple(sorted((name, value) for name, value in given.items() if name not in framed))
        key = (channel, template, tenant.slug, context["locale"], context["today"], framed, rest)
        frames = self.frames.get(key)
        if frames is None:
            if len(self.frames) >= MAX_FRAMES:
                self.frames.clear()  # those of days gone by, for the most part
            places = marks(framed)
            subject, body_text, body_html = self._compose(tenant, channel, template, {**context, **places})
            frames = self.frames.setdefault(key, (
                None if subject is None else Frame.of(subject, places), Frame.of(body_text, places),
                None if body_html is None else Frame.of(body_html, places)))
        values = {name: str(context[name]) for name in framed}
        subject_frame, text_frame, html_frame = frames
        return Written(None if subject_frame is None else subject_frame.fill(values, escaped=False),
                       text_frame.fill(values, escaped=False),
                       None if html_frame is None else html_frame.fill(values))

    def _compose(self, tenant: Tenant, channel: str, template: str, context: dict[str, Any]) -> Written:
        """The message's subject, text and HTML, rendered from its templates."""
        if channel == "email":
            base = f"email/{template}"
            subject = " ".join(self._render(tenant, f"{base}/subject.txt", context).split())
            body_text = self._render(tenant, f"{base}/body.txt", context).strip() + "\n"
            body_html = self._render_optional(tenant, f"{base}/body.html", context)
            if tenant.support.phone:
                # Every email ends with how to reach the advisers (``templates/email/footer``).
                body_text += "\n" + self._render(tenant, "email/footer/footer.txt", context).rstrip() + "\n"
                if body_html:
                    footer = self._render(tenant, "email/footer/footer.html", context)
                    body_html = body_html.replace("</body>", f"{footer}\n</body>", 1)
            return Written(subject, body_text, body_html)
        if channel == "letter":
            base = f"letter/{template}"
            return Written(" ".join(self._render(tenant, f"{base}/subject.txt", context).split()),
                           self._render(tenant, f"{base}/body.txt", context).strip("\n") + "\n", None)
        return Written(None, self._render(tenant, f"sms/{template}.txt", context).strip(), None)

    def _render(self, tenant: Tenant, name: str, context: dict[str, Any]) -> str:
        return self.render([f"{tenant.slug}/{name}", name], context["locale"], context)

    def _render_optional(self, tenant: Tenant, name: str, context: dict[str, Any]) -> str | None:
        try:
            return self._render(tenant, name, context)
        except TemplateNotFound:
            return None

    # -- delivery -------------------------------------------------------------

    def delivered(self, message: Message) -> bool:
        """Whether ``message`` was sent soon after its transaction committed (False: delayed,
        the worker retries it; the page should say so).

        Tried at commit ("inline" mode): how that went. Otherwise the queue says: this
        reads the message's status, from a short pause after the commit, until it is "sent",
        at most ``message_sent_wait_ms`` after the commit (the worker, woken by it, usually
        sends a code well within that).
        Calls for the messages of one commit share that one wait. False before the commit.
        """
        tried = dispatch.delivered(self.session, message)
        if tried is not None:
            return tried
        committed = dispatch.committed_at(self.session, message)
        if committed is None:
            return False
        deadline = committed + self.settings.message_sent_wait_ms / 1000
        # Reads of their own for the wait (at most ``message_sent_wait_ms``), outside any
        # transaction: each is one round trip, prepared (no BEGIN and ROLLBACK around it), and
        # sees the latest commit; the caller's session (and its transaction) is left alone.
        statements = statements_beside(self.session)
        try:
            # The first read a pause after the commit: at once, the worker would not have had
            # the time to send (that very commit wakes it).
            pause = SENT_POLL_FIRST_SECONDS
            read_at = committed + pause
            while True:
                time.sleep(max(0.0, min(read_at, deadline) - time.monotonic()))
                found = statements.first(_STATUS, {"id": message.id})
                status = found.status if found is not None else None
                if status != "pending" or time.monotonic() >= deadline:
                    return status == "sent"
                pause = min(pause * 2, SENT_POLL_SECONDS)
                read_at = time.monotonic() + pause
        finally:
            statements.close()

    def send_now(self, message: Message) -> bool:
        """Try ``message`` once, at once; True when it was delivered.

        Run after the commit on a session of its own in the "inline" delivery mode
        (``idp.channels.dispatch``). If a worker holds the message, this waits for its
        attempt and reports it.
        """
        locked = self._lock(message.id)
        if locked.status != "pending":
            self.session.commit()
            return locked.status == "sent"
        if locked.attempts and locked.next_attempt_at > self.clock():
            # A worker just tried and failed: the backoff applies to us too.
            self.session.commit()
            return False
        return self._attempt(locked)

    def deliver(self, message: Message) -> bool:
        """One attempt at ``message`` now, whatever its schedule; True when it was delivered.

        A message already sent is not sent again (True); a failed one is left
        alone (False; `idp outbox retry` puts it back). Commits.
        """
        locked = self._lock(message.id)
        if locked.status != "pending":
            self.session.commit()
            return locked.status == "sent"
        return self._attempt(locked)

    def deliver_due(
        self, limit: int = 100, *, should_stop: Callable[[], bool] | None = None
    ) -> Batch:
        """Deliver up to ``limit`` pending messages that were due when the run started, oldest
        first: each is tried once in a run.

        Each message is claimed, attempted and committed on its own, so a
        crash loses at most the one attempt in flight, and concurrent workers
        share the queue without sending anything twice. ``should_stop`` is
        asked before each message (a worker told to stop ends early).
        """
        sent = still_pending = failed = expired = 0
        # A message tried in the run and still pending is due again only after its backoff, later
        # than the run's start.
        due = self.clock()
        for _ in range(limit):
            if should_stop is not None and should_stop():
                break
            message = load(self.session, Message, _DUE, {"due": due}, fresh=True)
            if message is None:
                break
            if self._attempt(message):
                sent += 1
            elif message.status == "failed":
                failed += 1
            elif message.status == "expired":
                expired += 1
            else:
                still_pending += 1
        self.session.commit()
        return Batch(sent, still_pending, failed, expired)

    def retry(self, message: Message) -> None:
        """Put a failed (or waiting) message back in the queue, due now, with a fresh
        allowance of attempts. The caller commits."""
        if message.status == "sent":
            raise MessageAlreadySent(f"message {message.id} was already sent")
        if message.status == "expired" or message.outlived_by(self.clock()):
            raise MessageExpired(f"message {message.id} carried a code that has expired")
        message.status = "pending"
        message.attempts = 0
        message.next_attempt_at = self.clock()
        log.info("message %s put back in the queue", message.id)

    def retry_failed(self) -> tuple[list[Message], list[Message]]:
        """Every failed message back in the queue, like ``retry``, except those whose code has
        expired since: they are marked expired. Both lists, oldest first; the caller commits."""
        failed = self.session.scalars(
            select(Message).where(Message.status == "failed").order_by(Message.id)).all()
        now = self.clock()
        retried, expired = [], []
        for message in failed:
            if message.outlived_by(now):
                message.status = "expired"
                expired.append(message)
            else:
                self.retry(message)
                retried.append(message)
        return retried, expired

    # -- internals --------------------------------------------------------------

    def _lock(self, message_id: int) -> Message:
        """The message's row, locked until the next commit (waits for another holder)."""
        statement = (
            select(Message)
            .where(Message.id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        message = self.session.scalars(statement).one_or_none()
        if message is None:
            raise LookupError(f"no message {message_id}")
        return message

    def _attempt(self, message: Message) -> bool:
        """Send a locked, pending message once; record the outcome and commit."""
        who = mask_recipient(message.channel, message.recipient)
        if message.outlived_by(self.clock()):
            # A code that no longer works would only confuse the member who finally gets it.
            message.status = "expired"
            self.session.commit()
            DELIVERIES.labels(message.channel, message.template, "expired").inc()
            log.warning("message %s expired before it could be sent: %s %s to %s (%d attempt(s))",
                        message.id, message.channel, message.template, who, message.attempts)
            return False
        permanent = False
        try:
            self._transmit(message)
        except DeliveryError as exc:
            error, permanent = str(exc), exc.permanent
        except Exception as exc:  # one broken message must not stop the queue
            # Only the type: an exception's text could quote the message.
            error = f"unexpected error: {type(exc).__name__}"
        else:
            now = self.clock()
            write(self.session, _SENT, {"p_id": message.id, "p_now": now})
            for key, value in (("status", "sent"), ("attempts", message.attempts + 1), ("sent_at", now)):
                set_committed_value(message, key, value)
            self.session.commit()
            DELIVERIES.labels(message.channel, message.template, "sent").inc()
            log.info("message %s sent: %s %s to %s (attempt %d)", message.id, message.channel,
                     message.template, who, message.attempts)
            return True

        now = self.clock()
        message.attempts += 1
        message.last_error = error[:ERROR_MAX_LENGTH]
        if permanent or message.attempts >= self._max_attempts(message):
            message.status = "failed"
            if message.channel == "logout":
                # The relying party was never told: its session may outlive the provider's.
                events.record_event(self.session, events.BACKCHANNEL_LOGOUT_FAILED,
                                    tenant=message.tenant, client_id=message.subject,
                                    message_id=message.id, attempts=message.attempts,
                                    error=message.last_error)
            self.session.commit()
            DELIVERIES.labels(message.channel, message.template, "failed").inc()
            log.error("message %s failed for good after %d attempt(s): %s %s to %s: %s",
                      message.id, message.attempts, message.channel, message.template, who, error)
            return False
        message.next_attempt_at = now + self.backoff_for(message)
        self.session.commit()
        DELIVERIES.labels(message.channel, message.template, "delayed").inc()
        log.warning("message %s delayed: %s %s to %s, attempt %d failed (%s); next try at %s",
                    message.id, message.channel, message.template, who, message.attempts, error,
                    message.next_attempt_at.isoformat(timespec="seconds"))
        return False

    def _max_attempts(self, message: Message) -> int:
        if message.channel == "logout":
            return self.settings.backchannel_logout_max_attempts
        return self.settings.message_max_attempts

    def backoff_for(self, message: Message) -> timedelta:
        """Wait before the message's next try after its failed ones: base·2^(n−1), at most 1 h;
        the base is the back-channel logouts' for a logout token, the messages' for the rest."""
        base = (self.settings.backchannel_logout_retry_base_seconds if message.channel == "logout"
                else self.settings.message_retry_base_seconds)
        exponent = min(max(message.attempts - 1, 0), 20)  # 2^20 · base is far beyond the cap
        return min(timedelta(seconds=base * 2**exponent), MAX_BACKOFF)

    def _transmit(self, message: Message) -> None:
        if message.channel == "email":
            self.email_sender.send(
                message.recipient, message.subject or "", message.body_text, message.body_html
            )
        elif message.channel == "sms":
            self.sms_sender.send(message.recipient, message.body_text)
        elif message.channel == "letter":
            # Loaded by the process that posts a letter only: the PDF library weighs about 40 MiB
            # of memory, which the web workers (who queue letters, never render them) do without.
            from idp.channels.letters import letter_pdf  # noqa: PLC0415

            self.letter_sender.send(message.recipient.split("\n"),
                                    f"{message.tenant}-{message.id}", letter_pdf(message))
        elif message.channel == "logout" and self.logout_sender is not None:
            self.logout_sender.send(message.tenant, message.recipient, message.body_text)
        else:
            raise DeliveryError(f"unknown channel {message.channel!r}", permanent=True)


def queue_logout(session: Session, tenant: str, client_id: str, uri: str, claims: str) -> Message:
    """Queue a back-channel logout token for ``client_id`` at ``uri``, in the caller's
    transaction; the worker posts it once that commits (never the request itself: a relying
    party that does not answer must not hold the member's page). ``claims``: the token's
    claims as JSON, signed at each attempt."""
    message = _stored(session, tenant=tenant, channel="logout", template="backchannel_logout",
                      recipient=uri, subject=client_id, body_text=claims, body_html=None,
                      created_at=utcnow(), expires_at=None)
    log.info("message %s queued: logout token for client %s (%s)", message.id, client_id, tenant)
    return message


def _stored(session: Session, **values: Any) -> Message:
    """A message stored pending and due at once (``_QUEUED``), in the caller's transaction; the
    worker is woken when that commits (``idp.channels.dispatch``)."""
    message = load(session, Message, _QUEUED, values)
    assert message is not None  # an INSERT's RETURNING has its row
    dispatch.note_queued(session, message)
    return message

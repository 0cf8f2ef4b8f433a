"""Email, SMS and letter senders: one protocol per channel, a real backend and an outbox one.

A sender transmits one message and either returns or raises ``DeliveryError``;
queueing, retries and bookkeeping are ``idp.channels.services.Messages``'s job.
Nothing here logs or reports a message's content (it carries one-time codes
and links): errors name the failure, never the text.
"""

from __future__ import annotations

import base64
import contextlib
import os
import smtplib
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

import requests

from idp.config import Settings

# Every exchange with a relay or gateway is bounded, so that one that accepts the
# connection and never answers holds the worker this long, not forever.
TIMEOUT_SECONDS = 10
# An SMTP session is used again for the next message (RFC 5321 3.3: a session may carry several
# mail transactions) when that message comes within KEEP_SECONDS of the last one; it is closed
# after that, after KEEP_MESSAGES messages or KEEP_LIFETIME seconds (relays may limit either),
# and SESSIONS_KEPT sessions at most are kept (the worker sends one message at a time; pages send
# their own in the "inline" delivery mode).
KEEP_SECONDS = 10.0
KEEP_MESSAGES = 100
KEEP_LIFETIME = 300.0
SESSIONS_KEPT = 2
# Longest error kept on a message (the column holds 500).
MAX_ERROR_LENGTH = 300
# An email's bodies: UTF-8 in quoted-printable, which leaves French text, mostly ASCII, readable.
_BODY_CHARSET = Charset("utf-8")
_BODY_CHARSET.body_encoding = QP


class DeliveryError(Exception):
    """A message could not be handed over; ``permanent`` when retrying cannot help.

    The text is short and free of secrets: it is stored on the message and
    shown to operators.
    """

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason[:MAX_ERROR_LENGTH])
        self.permanent = permanent


@runtime_checkable
class EmailSender(Protocol):
    """Sends one email with a plain-text body and its HTML alternative."""

    def send(self, recipient: str, subject: str, text: str, html: str | None) -> None:
        """Hand the email over for delivery, or raise ``DeliveryError``."""

    def close(self) -> None:
        """End what the sender keeps open between messages (its relay's sessions)."""


@runtime_checkable
class SmsSender(Protocol):
    """Sends one SMS to a phone number in E.164 form (+33612345678)."""

    def send(self, recipient_e164: str, text: str) -> None:
        """Hand the SMS over for delivery, or raise ``DeliveryError``."""


@runtime_checkable
class LetterSender(Protocol):
    """Has one letter printed and posted: its PDF, the envelope window's address lines, and a
    reference unique to the letter (the same on every attempt)."""

    def send(self, address_lines: list[str], reference: str, pdf: bytes) -> None:
        """Hand the letter over for printing and posting, or raise ``DeliveryError``."""


@runtime_checkable
class LogoutSender(Protocol):
    """Posts one back-channel logout token to a relying party."""

    def send(self, tenant: str, uri: str, claims: str) -> None:
        """Sign ``claims`` (JSON) as a logout token of ``tenant`` and post it to ``uri``, or raise
        ``DeliveryError``."""


class OutboxEmailSender:
    """Sends nothing: the queued message row is what the outbox page shows."""

    def send(self, recipient: str, subject: str, text: str, html: str | None) -> None:
        return None

    def close(self) -> None:
        return None


class OutboxSmsSender:
    """Sends nothing: the queued message row is what the outbox page shows."""

    def send(self, recipient_e164: str, text: str) -> None:
        return None


class OutboxLetterSender:
    """Posts nothing: the queued message row is what the outbox page shows, with its PDF."""

    def send(self, address_lines: list[str], reference: str, pdf: bytes) -> None:
        return None


@dataclass(eq=False)
class _Session:
    """An SMTP session open with the relay, between two messages."""

    smtp: smtplib.SMTP
    opened: float
    last: float = 0.0
    messages: int = 0

    def spent(self, now: float, keep_seconds: float) -> bool:
        return (now - self.last > keep_seconds or now - self.opened > KEEP_LIFETIME
                or self.messages >= KEEP_MESSAGES)


class SmtpEmailSender:
    """Sends through an SMTP relay, keeping the session open between messages.

    ``security`` is "starttls" (the connection must upgrade: a server that
    does not offer STARTTLS is an error, never a silent downgrade), "ssl"
    (TLS from the first byte) or "none" (a local mail catcher).

    A message that follows another within ``keep_seconds`` goes in the same session, after a
    ``RSET`` that checks the relay still holds it (a relay that closed it gets a new one): no new
    connection, TLS handshake and login each time. Sessions left unused are closed (``QUIT``) by a
    thread of the sender's; a session that failed a message is closed at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        mail_from: str,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        timeout: float = TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
        keep_seconds: float = KEEP_SECONDS,
    ):
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.keep_seconds = keep_seconds
        self._start()
        _smtp_senders.add(self)

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._kept: list[_Session] = []
        self._closing = False  # whether the thread that closes unused sessions runs

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpEmailSender:
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            mail_from=settings.mail_from,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
        )

    def _context(self) -> ssl.SSLContext:
        # The system's certificate authorities, read once: reading them costs more CPU than the
        # rest of a message (bench/RESULTS.md).
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def build(self, recipient: str, subject: str, text: str, html: str | None) -> Message:
        """The message as it is sent: the text, and the HTML as its alternative when there is one.

        Written with the email package's classic classes (``email.mime``), the headers as they go
        on the wire: ``EmailMessage`` parses each header it is given and writes its parts through
        its content manager, three times the CPU of a code's email in the outbox worker
        (bench/RESULTS.md). A message to or from an address that is not ASCII is ``EmailMessage``'s
        (``_international``). A header value that would span lines is refused, as ``EmailMessage``
        refuses it: it would let its text write headers of its own.
        """
        if any(char in value for value in (recipient, subject) for char in "\r\n"):
            raise DeliveryError("a header of the message would span lines", permanent=True)
        name, address = parseaddr(self.mail_from)
        if not (recipient.isascii() and address.isascii()):
            return self._international(recipient, subject, text, html, address)
        body = _text_part(text, "plain")
        parts = body if html is None else MIMEMultipart("alternative",
                                                        _subparts=[body, _text_part(html, "html")])
        # The classic classes write a ``Header`` given as a value encoded (RFC 2047); their stubs
        # name only text.
        message = cast("Message[str, str | Header]", parts)
        message["From"] = formataddr((name, address), "utf-8")
        message["To"] = recipient
        message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
        self._stamp(message, address)
        return message

    def _international(self, recipient: str, subject: str, text: str, html: str | None,
                       address: str) -> EmailMessage:
        """A message whose addresses are written as they are, in UTF-8 (RFC 6532), which smtplib
        sends only to a relay that offers SMTPUTF8 (RFC 6531): ``EmailMessage``'s, which the
        classic classes cannot write (they would encode an address as a word of RFC 2047).
        ``address``: the sender's, from ``mail_from``."""
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = recipient
        message["Subject"] = subject
        self._stamp(message, address)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    @staticmethod
    def _stamp(message: Message[str, Any], address: str) -> None:
        """The headers every message has: its date, its id, and that a machine sent it."""
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
        # RFC 3834: an automatic message; auto-responders should not answer it.
        message["Auto-Submitted"] = "auto-generated"

    def send(self, recipient: str, subject: str, text: str, html: str | None) -> None:
        message = self.build(recipient, subject, text, html)
        with self._delivery_errors():
            session = self._reused() or self._open()
            try:
                session.smtp.send_message(message)
            except smtplib.SMTPNotSupportedError:
                _quit(session.smtp)
                # smtplib's answer to a message whose addresses are not ASCII, for a relay that
                # does not take them: retrying cannot help.
                raise DeliveryError(f"SMTP server {self._where()} does not offer SMTPUTF8, which an "
                                    "address that is not ASCII needs", permanent=True) from None
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
                _quit(session.smtp)  # the relay refused and still answers: ended politely
                raise
            except BaseException:
                session.smtp.close()  # lost or silent: its state is unknown
                raise
            self._keep(session)

    def close(self) -> None:
        """End the kept sessions now (``QUIT``), as when the worker stops."""
        with self._lock:
            kept, self._kept = self._kept, []
        for session in kept:
            _quit(session.smtp)

    def _open(self) -> _Session:
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                try:
                    smtp.starttls(context=self._context())
                except smtplib.SMTPNotSupportedError:
                    raise DeliveryError(f"SMTP server {self._where()} does not offer STARTTLS") from None
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            _quit(smtp)
            raise
        return _Session(smtp, opened=time.monotonic())

    def _reused(self) -> _Session | None:
        """A kept session the relay still holds, ready for a message; None when there is none."""
        while True:
            with self._lock:
                if not self._kept:
                    return None
                session = self._kept.pop()
            if session.spent(time.monotonic(), self.keep_seconds):
                _quit(session.smtp)
                continue
            try:
                session.smtp.rset()
            except (smtplib.SMTPException, OSError):
                session.smtp.close()  # closed by the relay meanwhile
                continue
            return session

    def _keep(self, session: _Session) -> None:
        session.last = time.monotonic()
        session.messages += 1
        with self._lock:
            kept = len(self._kept) < SESSIONS_KEPT and not session.spent(session.last, self.keep_seconds)
            if kept:
                self._kept.append(session)
                if not self._closing:
                    self._closing = True
                    threading.Thread(target=self._close_unused, name="smtp-sessions", daemon=True).start()
        if not kept:
            _quit(session.smtp)

    def _close_unused(self) -> None:
        """Close each kept session once unused for ``keep_seconds``; end when none is kept."""
        while True:
            with self._lock:
                now = time.monotonic()
                spent = [session for session in self._kept if session.spent(now, self.keep_seconds)]
                self._kept = [session for session in self._kept if session not in spent]
                wake = min((session.last + self.keep_seconds for session in self._kept), default=None)
                self._closing = wake is not None
            for session in spent:
                _quit(session.smtp)
            if wake is None:
                return
            time.sleep(max(wake - time.monotonic(), 0.0) + 0.01)

    @contextlib.contextmanager
    def _delivery_errors(self) -> Iterator[None]:
        """smtplib's, ssl's and the socket's errors as ``DeliveryError``s."""
        try:
            yield
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _text in exc.recipients.values()})
            raise DeliveryError(
                f"SMTP server refused the recipient ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login refused by {self._where()} ({exc.smtp_code})"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP server {self._where()} answered {exc.smtp_code} "
                f"({type(exc).__name__})"
            ) from None
        except smtplib.SMTPException as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports it as a disconnection
                raise DeliveryError(f"SMTP server {self._where()} timed out "
                                    f"({self.timeout:g} s without an answer)") from None
            raise DeliveryError(f"SMTP error with {self._where()}: {type(exc).__name__}") from None
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"TLS with SMTP server {self._where()} failed: {exc.reason or type(exc).__name__}"
            ) from None
        except TimeoutError:
            raise DeliveryError(f"SMTP server {self._where()} timed out "
                                f"({self.timeout:g} s without an answer)") from None
        except OSError as exc:
            raise DeliveryError(
                f"cannot reach SMTP server {self._where()}: {exc.strerror or type(exc).__name__}"
            ) from None

    def _where(self) -> str:
        return f"{self.host}:{self.port}"


def _quit(smtp: smtplib.SMTP) -> None:
    """End a session politely if the relay still answers, and close it whatever it says."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()
    smtp.close()


_smtp_senders: weakref.WeakSet[SmtpEmailSender] = weakref.WeakSet()


def _start_afresh_after_fork() -> None:
    # A child process's senders keep no session: those kept are its parent's, whose thread that
    # closes them the child does not have.
    for sender in list(_smtp_senders):
        for session in sender._kept:
            session.smtp.close()  # the child's copy of the socket only
        sender._start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh_after_fork)


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """A ``text/<subtype>`` part of an email, in UTF-8 and quoted-printable."""
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _BODY_CHARSET)
    return part


class _JsonGateway:
    """An HTTP API that takes one JSON POST per message, with a bearer token.

    Every exchange is bounded by ``timeout``; redirects are not followed (they would
    drop the token or the body). Errors name the failure, never the URL or the body.
    """

    name = "gateway"

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_SECONDS,
                 session: requests.Session | None = None):
        self.url = url
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()

    def close(self) -> None:
        """Close the pooled connections to the gateway."""
        self.session.close()

    def _post(self, body: dict, headers: dict[str, str] | None = None) -> int:
        """POST ``body``; the answer's HTTP status, or ``DeliveryError`` for no answer."""
        headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.post(self.url, json=body, headers=headers,
                                         timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise DeliveryError(
                f"{self.name} timed out ({self.timeout:g} s without an answer)") from None
        except requests.RequestException as exc:
            # The exception text can repeat the URL; the type is enough to act on.
            raise DeliveryError(f"cannot reach the {self.name}: {type(exc).__name__}") from None
        response.close()
        return response.status_code


class HttpSmsSender(_JsonGateway):
    """Posts each SMS as JSON ``{"to", "from", "text"}`` to the gateway, with a bearer token.

    Any answer other than 2xx (redirects included: they would drop the token
    or the body) and any network error is a ``DeliveryError``.
    """

    name = "SMS gateway"

    def __init__(self, url: str, token: str, sender: str, *, timeout: float = TIMEOUT_SECONDS,
                 session: requests.Session | None = None):
        super().__init__(url, token, timeout=timeout, session=session)
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpSmsSender:
        return cls(settings.sms_gateway_url, settings.sms_gateway_token, settings.sms_sender,
                   timeout=settings.sms_gateway_timeout_seconds)

    def send(self, recipient_e164: str, text: str) -> None:
        status = self._post({"to": recipient_e164, "from": self.sender, "text": text})
        if not 200 <= status < 300:
            # 400/422: the gateway rejects this message itself (e.g. a number it
            # cannot serve); anything else (401, 429, 5xx…) can succeed later.
            raise DeliveryError(
                f"SMS gateway answered HTTP {status}", permanent=status in (400, 422)
            )


class HttpLetterSender(_JsonGateway):
    """Posts each letter to a print-and-mail provider as JSON, with a bearer token::

        {"reference": "malakoff-42", "address_lines": ["Jean-Pierre DUPONT-MOREL", …,
         "69007 LYON"], "pdf": "<base64 of the A4 PDF>"}

    The reference is also sent as ``Idempotency-Key``: a letter retried after a timeout
    (which the provider may have received) must not be printed twice. 400/409/413/422
    answers are refusals of this letter (permanent); any other answer than 2xx (redirects
    included), a timeout or a network error is tried again later.
    """

    name = "letter provider"

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLetterSender:
        return cls(settings.letter_gateway_url, settings.letter_gateway_token,
                   timeout=settings.letter_gateway_timeout_seconds)

    def send(self, address_lines: list[str], reference: str, pdf: bytes) -> None:
        body = {"reference": reference, "address_lines": address_lines,
                "pdf": base64.b64encode(pdf).decode("ascii")}
        status = self._post(body, {"Idempotency-Key": reference})
        if not 200 <= status < 300:
            # 409: the reference was already used with another letter; 413: the PDF is too big.
            raise DeliveryError(f"letter provider answered HTTP {status}",
                                permanent=status in (400, 409, 413, 422))


class HttpLogoutSender:
    """Posts ``logout_token=…`` as a form (OpenID Connect Back-Channel Logout 1.0 2.5).

    The token is signed at each attempt (``sign(tenant, claims)``), so that a retry carries a
    fresh, short-lived one. A 2xx answer is success; 5xx, 408, 429 and network errors can succeed
    later; any other answer (400: the relying party refused the token, 2.8) will not.
    """

    def __init__(self, sign: Callable[[str, str], str], *, timeout: float = TIMEOUT_SECONDS,
                 session: requests.Session | None = None):
        self.sign = sign
        self.timeout = timeout
        self.session = session or requests.Session()

    def send(self, tenant: str, uri: str, claims: str) -> None:
        token = self.sign(tenant, claims)
        try:
            response = self.session.post(
                uri, data={"logout_token": token}, timeout=self.timeout, allow_redirects=False,
                # 2.5: the response must not be cached; nothing in it is read but its status.
                headers={"Cache-Control": "no-cache"}, stream=True)
        except requests.Timeout:
            raise DeliveryError(f"logout endpoint timed out ({self.timeout:g} s without an answer)") from None
        except requests.RequestException as exc:
            raise DeliveryError(f"cannot reach the logout endpoint: {type(exc).__name__}") from None
        status = response.status_code
        response.close()
        if not 200 <= status < 300:
            retry = status >= 500 or status in (408, 429)
            raise DeliveryError(f"logout endpoint answered HTTP {status}", permanent=not retry)


def build_senders(settings: Settings) -> tuple[EmailSender, SmsSender]:
    """The email and SMS senders that ``mail_backend`` and ``sms_backend`` select."""
    email: EmailSender = (
        SmtpEmailSender.from_settings(settings)
        if settings.mail_backend == "smtp"
        else OutboxEmailSender()
    )
    sms: SmsSender = (
        HttpSmsSender.from_settings(settings)
        if settings.sms_backend == "http"
        else OutboxSmsSender()
    )
    return email, sms


def build_letter_sender(settings: Settings) -> LetterSender:
    """The letter sender that ``letter_backend`` selects."""
    if settings.letter_backend == "http":
        return HttpLetterSender.from_settings(settings)
    return OutboxLetterSender()


def mask_recipient(channel: str, recipient: str) -> str:
    """Enough of an address or number for an operator to tell messages apart, no more.

    ``jeanne.martin@example.org`` → ``j•••@example.org``;
    ``+33612345688`` → ``+336•••••88``; a postal address → its department, ``69•••``.
    """
    if channel == "letter":
        lines = recipient.split("\n")
        # The locality line: the last one, or the one before the country's abroad.
        locality = lines[-1] if len(lines) < 2 or lines[-1][:1].isdigit() else lines[-2]
        return f"{locality[:2]}•••" if locality[:2].isalnum() else "•••"
    if channel == "logout":
        parts = urlsplit(recipient)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "•••"
    if channel == "email":
        local, _at, domain = recipient.rpartition("@")
        if not local:
            return "•••"
        return f"{local[0]}•••@{domain}"
    if len(recipient) <= 6:
        return "•••"
    return f"{recipient[:4]}{'•' * (len(recipient) - 6)}{recipient[-2:]}"


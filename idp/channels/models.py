"""Outgoing messages (email, SMS, letters, and logout tokens for relying parties), queued in
the database until delivered.

A letter's ``recipient`` is its postal address as the envelope's window shows it: the
lines of ``idp.registry.postal.PostalAddress``, joined by newlines (at most 6 lines of
38 characters). Its ``subject`` is the letter's subject line and ``body_text`` its text
(``idp.channels.letters`` lays both out as a PDF, at each delivery and on the outbox page:
the PDF itself is not stored).

A "logout" message is a back-channel logout notice: ``recipient`` is the client's
``backchannel_logout_uri``, ``subject`` its client id, ``body_text`` the logout token's claims
(signed when sent, ``idp.channels.senders.HttpLogoutSender``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

CHANNELS = ("email", "sms", "letter", "logout")
# expired: not sent, because what it carried (a one-time code) was no longer valid when its turn came.
MESSAGE_STATUSES = ("pending", "sent", "failed", "expired")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(2000))
    subject: Mapped[str | None] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    # After this, delivering the message is pointless: it is dropped (status expired), not sent.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)

    def outlived_by(self, now: datetime) -> bool:
        """Whether what the message carries (a one-time code) has ended by ``now``."""
        return self.expires_at is not None and self.expires_at <= now

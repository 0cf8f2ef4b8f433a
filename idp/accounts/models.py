"""Member accounts: one per member per tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

ACCOUNT_STATUSES = ("pending", "active", "disabled")
# The communication preferences (SPEC §3.2) of a member who has not chosen: documents keep
# coming by post, as before the account, and no marketing without the member's consent.
DEFAULT_PREFERENCES: Mapping[str, Any] = MappingProxyType(
    {"statements": "post", "letters": "post", "marketing": False})


def new_subject() -> str:
    return str(uuid.uuid4())


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("tenant", "email"),
        UniqueConstraint("tenant", "member_number"),
    )

    # The OIDC `sub`: random, stable, never reused, meaningless outside this tenant.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_subject)
    tenant: Mapped[str] = mapped_column(String(32), index=True)
    member_number: Mapped[str | None] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_number: Mapped[str | None] = mapped_column(String(20))
    phone_number_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birthdate: Mapped[date | None] = mapped_column(Date)
    role: Mapped[str] = mapped_column(String(16), default="principal")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    terms_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The registry record this account belongs to (null for operator-made accounts).
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    # Random, changed whenever an activation link is issued: only the newest link works,
    # and cleared once used (single use).
    activation_nonce: Mapped[str | None] = mapped_column(String(64))
    terms_accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A member without contacts on file proves who they are with a code sent by post to the
    # registry's address: its digest (never the code), until when it is valid, and how many
    # tries it has taken. Set while the account waits for the letter; no activation link is
    # sent until the code comes back.
    letter_code_digest: Mapped[str | None] = mapped_column(String(64))
    letter_code_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    letter_code_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The digest of the code once it came back, while the account waits for the link it led
    # to: the same code typed again (a second tap, a page sent again) is told the email is on
    # its way, not that the code is wrong.
    letter_code_spent_digest: Mapped[str | None] = mapped_column(String(64))
    # Communication preferences (Miel): statements/letters by "email" or "post", marketing consent.
    preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Where members sign in with an email: an account from the previous system that still
    # signs in with its member number until it makes its email its identifier (SPEC §7).
    legacy_login: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    login_migrated_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When the invitation to migrate was queued: never twice to the same member.
    migration_invited_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The language of the member's emails and SMS when they are not at the screen (commands,
    # operators' decisions): the one of the pages they registered, activated and signed in on.
    # Null: the tenant's default.
    locale: Mapped[str | None] = mapped_column(String(8))

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def preferences_or_defaults(self) -> dict[str, Any]:
        """The communication preferences, the defaults for those the member has not set."""
        return {**DEFAULT_PREFERENCES, **(self.preferences or {})}

    @property
    def awaits_letter(self) -> bool:
        """Pending until the code sent by post comes back (see ``letter_code_digest``)."""
        return self.letter_code_digest is not None


REQUEST_STATUSES = ("pending", "approved", "rejected")


class RegistrationRequest(Base):
    """A registration that matched the registry only nearly: support decides (SPEC §2)."""

    __tablename__ = "registration_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # "near_miss" (a name differs), "contact_mismatch" (email/mobile differ from the records),
    # "no_contact" (nothing on file to prove the member's hold of, and no letter possible) or
    # "pending_elsewhere" (an account waits for activation with other contacts).
    reason: Mapped[str] = mapped_column(String(32))
    # What the member typed, for the reviewer: names, birth date, email, mobile, terms version.
    submitted: Mapped[dict[str, Any]] = mapped_column(JSON)
    differences: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    # The language of the pages the member registered on: support's decision is written in it.
    locale: Mapped[str | None] = mapped_column(String(8))


class RecoveryRequest(Base):
    """A forgot-password or forgot-identifier request, as typed, whatever it names (SPEC §6).

    The page only records it, so that it does the same work whether or not the identifier
    exists; the worker looks it up, sends what it calls for, and deletes it.
    """

    __tablename__ = "recovery_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32))
    # "reset" (a reset link), "login_email" (which email signs in, where members sign in
    # with it), "member_number" (the member number, where members sign in with it).
    kind: Mapped[str] = mapped_column(String(16))
    # What was typed: the identifier, the member number, or the NIR, names and birth date.
    typed: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The language of the pages it was asked on: the email is written in it.
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

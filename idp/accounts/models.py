"""Member accounts: one per member per tenant."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

ACCOUNT_STATUSES = ("pending", "active", "disabled")


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

    @property
    def is_active(self) -> bool:
        return self.status == "active"

"""The insurer's member records: the source of truth for who may register."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

ROLES = ("principal", "beneficiary")
KINDS = ("health", "pension", "provident")
STATUSES = ("active", "terminated")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("tenant", "member_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32), index=True)
    member_number: Mapped[str] = mapped_column(String(8))
    nir: Mapped[str | None] = mapped_column(String(15), index=True)
    last_name: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def postal_address(self):  # TEMPORARY until the postal address lands
        return None

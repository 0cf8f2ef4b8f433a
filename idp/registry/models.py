"""The insurer's member records: the source of truth for who may register."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow
from idp.registry.postal import DEFAULT_COUNTRY, MAX_LINE_LENGTH, MAX_POSTCODE_LENGTH, PostalAddress

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
    # The postal address (idp.registry.postal): where a letter goes, e.g. an activation code
    # for a member with no email and no mobile on file.
    address_line1: Mapped[str | None] = mapped_column(String(MAX_LINE_LENGTH))
    address_line2: Mapped[str | None] = mapped_column(String(MAX_LINE_LENGTH))
    address_line3: Mapped[str | None] = mapped_column(String(MAX_LINE_LENGTH))
    postcode: Mapped[str | None] = mapped_column(String(MAX_POSTCODE_LENGTH))
    city: Mapped[str | None] = mapped_column(String(MAX_LINE_LENGTH))
    # ISO 3166-1 alpha-2.
    country: Mapped[str] = mapped_column(String(2), default=DEFAULT_COUNTRY,
                                         server_default=DEFAULT_COUNTRY)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def postal_address(self) -> PostalAddress | None:
        """Where a letter to the member goes; None when the registry's address is incomplete
        (no street line, postcode or city)."""
        street = tuple(line for line in (self.address_line1, self.address_line2,
                                         self.address_line3) if line)
        if not street or not self.postcode or not self.city:
            return None
        return PostalAddress(f"{self.first_name} {self.last_name}", street, self.postcode,
                             self.city, self.country or DEFAULT_COUNTRY)

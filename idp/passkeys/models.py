"""A member's passkeys: the public half of a WebAuthn credential and what it last said."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

# RFC 8176 authentication method references for the key that signed.
HARDWARE_KEY = "hwk"
SOFTWARE_KEY = "swk"


def new_passkey_id() -> str:
    return secrets.token_urlsafe(16)


class Passkey(Base):
    __tablename__ = "passkeys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_passkey_id)
    tenant: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # base64url, as browsers send it; WebAuthn §5.1.6 caps the raw id at 1023 bytes.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    # COSE_Key (RFC 9053), as the authenticator gave it.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's signature counter (unsigned 32 bits); 0 when it keeps none.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # HARDWARE_KEY or SOFTWARE_KEY, the `amr` a sign-in with it gets.
    key_kind: Mapped[str] = mapped_column(String(8))
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36))
    # The member's own name for it, shown in the list.
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when its counter went backwards (a cloned authenticator): it never signs in again.
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime)

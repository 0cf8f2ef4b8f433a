"""Audit log: security events, stored in the database, tagged "area:object:outcome"."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, DateTime, String, Table, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from idp.db import Base, utcnow, write

LOGIN_SUCCESS = "account:login:success"
LOGIN_FAILURE = "account:login:failure"
LOGOUT = "account:logout"
LOGIN_LOCKED = "account:login:locked"
# The password given again on an account page was wrong; too many times and the session ends.
REAUTH_FAILURE = "account:reauth:failure"
REAUTH_LOCKED = "account:reauth:locked"
OTP_SENT = "mfa:otp:sent"
OTP_FAILURE = "mfa:otp:failure"
OTP_LOCKED = "mfa:otp:locked"
DEVICE_TRUSTED = "mfa:device:trust"
DEVICE_REVOKED = "mfa:device:revoke"
NEW_DEVICE_NOTIFIED = "account:login:new-device"
ACCOUNT_CREATED = "account:create"
ACCOUNT_ACTIVATED = "account:activate"
ACCOUNT_DELETED = "account:delete"
MOBILE_CHANGED = "account:mobile:change"
EMAIL_CHANGED = "account:email:change"
LOGIN_MIGRATED = "account:migration:done"
MIGRATION_INVITED = "account:migration:invite"
# A wrong member number or password typed where members now sign in with their email.
LEGACY_LOGIN_FAILURE = "account:login:legacy-failure"
# A member number typed after the migration's cut-off date.
LEGACY_LOGIN_REFUSED = "account:login:legacy-refused"
PASSKEY_ADDED = "account:passkey:add"
PASSKEY_RENAMED = "account:passkey:rename"
PASSKEY_REMOVED = "account:passkey:remove"
PASSKEY_FAILURE = "account:passkey:failure"
# A passkey's signature counter went backwards: it is blocked (WebAuthn §6.1.1).
PASSKEY_CLONED = "account:passkey:clone-detected"
TERMS_ACCEPTED = "account:terms:accept"
# Communication preferences set or changed by the member (marketing consent given or withdrawn).
PREFERENCES_CHANGED = "account:preferences:change"
RESET_REQUESTED = "account:password:reset-request"
IDENTIFIER_REMINDED = "account:identifier:remind"
REGISTRATION_ACCEPTED = "registration:accepted"
REGISTRATION_MISS = "registration:miss"
REGISTRATION_REVIEW = "registration:review"
REGISTRATION_LETTER = "registration:letter:sent"
REGISTRATION_LETTER_FAILURE = "registration:letter:failure"
# An identity check refused, unmade, past the failed matches allowed on its member number or NIR.
REGISTRATION_LIMITED = "registration:match:limited"
REVIEW_APPROVED = "registration:review:approve"
REVIEW_REJECTED = "registration:review:reject"
PASSWORD_CHANGED = "account:password:change"  # noqa: S105 - an event tag
CONSENT_GRANTED = "oidc:consent:grant"
CODE_REUSED = "oidc:code:reuse"
REFRESH_REUSED = "oidc:refresh:reuse"
TOKEN_REVOKED = "oidc:token:revoke"  # noqa: S105 - an event tag
SESSION_TOKENS_REVOKED = "oidc:logout:revoke"
SESSIONS_ENDED = "account:session:end"
BACKCHANNEL_LOGOUT_FAILED = "oidc:backchannel-logout:failed"
CLIENT_ADDED = "admin:client:add"
CLIENT_REMOVED = "admin:client:remove"
CLIENT_UPDATED = "admin:client:update"
KEY_ROTATED = "admin:key:rotate"
MEMBERS_IMPORTED = "admin:members:import"
#: Every tag above (`idp audit --tag` takes one, or its first parts).
TAGS = frozenset(value for name, value in dict(globals()).items()
                 if name.isupper() and isinstance(value, str) and ":" in value)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str | None] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(36), index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# The event's row by one statement, sent in the caller's transaction: cheaper than an object for
# the unit of work to flush, and no caller reads the row back.
_NEW_EVENT = insert(cast("Table", AuditEvent.__table__))
#: Session.info key: the events recorded in the session's transaction (their rows' values), for
#: what counts them once it commits (idp.metrics).
RECORDED = "idp.recorded_events"


def record_event(
    db: Session,
    tag: str,
    *,
    tenant: str | None = None,
    account_id: str | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    **data: Any,
) -> None:
    """Add an audit event to the caller's transaction (it commits with the change it records)."""
    values = {"tag": tag, "tenant": tenant, "account_id": account_id, "client_id": client_id, "ip": ip,
              "user_agent": (user_agent or "")[:300] or None, "data": data or None}
    write(db, _NEW_EVENT, values)
    db.info.setdefault(RECORDED, []).append(values)

"""Revoking tokens, for the protocol (reuse detection, RFC 7009) and for account changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from idp import events
from idp.db import rowcount, utcnow
from idp.oidc.models import Token


def revoke_tokens(session: Session, condition: ColumnElement[bool], tag: str, *, tenant: str,
                  account_id: str, client_id: str | None = None, **data: Any) -> int:
    """Revoke the live tokens matching ``condition`` and record why, in the caller's transaction."""
    revoked = rowcount(session.execute(
        update(Token).where(condition, Token.revoked_at.is_(None)).values(revoked_at=utcnow())
    ))
    events.record_event(session, tag, tenant=tenant, account_id=account_id, client_id=client_id,
                        revoked_tokens=revoked, **data)
    return revoked


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


def revoke_session_tokens(session: Session, *, tenant: str, account_id: str, sid: str) -> int:
    """Revoke the tokens issued from one sign-in (its ``sid``), refresh tokens included.

    Logging out of the provider ends what that sign-in granted: a refresh token must not keep a
    relying party signed in after the member asked to sign out (RP-Initiated Logout 1.0 2).
    """
    condition = (Token.sid == sid) & (Token.tenant == tenant) & (Token.account_id == account_id)
    return revoke_tokens(session, condition, events.SESSION_TOKENS_REVOKED, tenant=tenant,
                         account_id=account_id)

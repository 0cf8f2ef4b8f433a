"""Revoking tokens, for the protocol (reuse detection, RFC 7009) and for account changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Table, func, insert, literal, null, select, update
from sqlalchemy.orm import Session

from idp.db import rowcount, utcnow
from idp.events import AuditEvent
from idp.oidc.models import Token

TOKENS = cast("Table", Token.__table__)
EVENTS = cast("Table", AuditEvent.__table__)


def revoke_tokens(executor: Session | Connection, condition: ColumnElement[bool], tag: str, *,
                  tenant: str, account_id: str, client_id: str | None = None,
                  now: datetime | None = None, **data: Any) -> int:
    """Revoke the live tokens matching ``condition`` and record why, together.

    On a session, in the caller's transaction. On PostgreSQL the revocation and its audit event
    are one statement (a data-modifying WITH query), so that a connection outside any transaction
    does both or neither in one round trip.
    """
    now = now or utcnow()
    revoke = update(TOKENS).where(condition, TOKENS.c.revoked_at.is_(None)).values(revoked_at=now)
    event = {"created_at": now, "tag": tag, "tenant": tenant, "account_id": account_id,
             "client_id": client_id}
    if _dialect(executor) == "postgresql":
        revoked = revoke.returning(TOKENS.c.id).cte("revoked")
        count = select(func.count()).select_from(revoked).scalar_subquery()
        pairs = [part for key, value in data.items() for part in (key, value)]
        recorded = insert(EVENTS).from_select(
            [*event, "data"],
            select(*(_literal(value) for value in event.values()),
                   func.json_build_object("revoked_tokens", count, *pairs)),
        ).returning(EVENTS.c.data)
        return int(executor.execute(recorded).scalar_one()["revoked_tokens"])
    revoked_count = rowcount(executor.execute(revoke))
    executor.execute(insert(EVENTS).values(**event, data={"revoked_tokens": revoked_count, **data}))
    return revoked_count


def _literal(value: Any) -> Any:
    return null() if value is None else literal(value)


def _dialect(executor: Session | Connection) -> str:
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name

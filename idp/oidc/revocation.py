"""Revoking tokens, for the protocol (reuse detection, RFC 7009) and for account changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    ScalarSelect,
    Table,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from idp.db import rowcount, utcnow
from idp.events import AuditEvent
from idp.oidc.models import Token

TOKENS = cast("Table", Token.__table__)
EVENTS = cast("Table", AuditEvent.__table__)

# Passes after a revocation for the tokens concurrent rotations added (``revoke_successors``): each
# pass finds one more rotation that was under way; two in a row within one revocation take a
# client answered and rotating again within milliseconds.
_SUCCESSOR_PASSES = 8


def revoke_tokens(executor: Session | Connection, condition: ColumnElement[bool], tag: str, *,
                  tenant: str, account_id: str, client_id: str | None = None,
                  now: datetime | None = None, **data: Any) -> int:
    """Revoke the live tokens matching ``condition`` and record why, together.

    On a session, in the caller's transaction. On PostgreSQL the revocation and its audit event
    are one statement (a data-modifying WITH query), so that a connection outside any transaction
    does both or neither in one round trip; ``condition`` takes whole families (a family's tokens
    share their account, session and code), whose newer tokens that rotations under way added
    then are revoked after it (``revoke_successors``).
    """
    now = now or utcnow()
    revoke = update(TOKENS).where(condition, TOKENS.c.revoked_at.is_(None)).values(revoked_at=now)
    event = {"created_at": now, "tag": tag, "tenant": tenant, "account_id": account_id,
             "client_id": client_id}
    if _dialect(executor) == "postgresql":
        revoked = revoke.returning(TOKENS.c.family_id, TOKENS.c.rotated_at).cte("revoked")
        count = select(func.count()).select_from(revoked).scalar_subquery()
        pairs = [part for key, value in data.items() for part in (key, value)]
        recorded = insert(EVENTS).from_select(
            [*event, "data"],
            select(*(_literal(value) for value in event.values()),
                   func.json_build_object("revoked_tokens", count, *pairs)),
        ).returning(EVENTS.c.data).cte("recorded")
        row = executor.execute(select(recorded.c.data, headless_families(revoked))).one()
        return int(row[0]["revoked_tokens"]) + revoke_successors(executor, condition, row[1], now)
    revoked_count = rowcount(executor.execute(revoke))
    executor.execute(insert(EVENTS).values(**event, data={"revoked_tokens": revoked_count, **data}))
    return revoked_count


def headless_families(revoked: CTE) -> ScalarSelect[Any]:
    """The families of which a revocation's UPDATE (``revoked``: the rows it returned, with their
    ``family_id`` and ``rotated_at``) revoked rows but not the head, the one token not rotated:
    an array, or NULL if none.

    On PostgreSQL the UPDATE sees the rows committed when it began. A rotation of the family's
    head that committed while the UPDATE waited for that row's lock added the family's next
    token, which the UPDATE did not see: the head it then revoked is found rotated. Those
    families' newer tokens are left to ``revoke_successors``. (A family whose head was revoked
    before, alone, is listed too: its next pass finds nothing.)
    """
    families = (select(revoked.c.family_id).group_by(revoked.c.family_id)
                .having(func.bool_and(revoked.c.rotated_at.is_not(None))).subquery())
    return select(func.array_agg(families.c.family_id)).scalar_subquery()


def revoke_successors(executor: Session | Connection, condition: ColumnElement[bool],
                      families: list[str] | None, now: datetime) -> int:
    """Revoke the tokens concurrent rotations added to ``families`` (``headless_families``) after
    a revocation of ``condition``, as part of it: each pass is a statement of its own, which sees
    what committed before it, until each family's head is found unrotated or nothing is left to
    revoke. Returns how many were revoked; a rotation that loses to a pass finds its token
    revoked and issues nothing."""
    revoked = 0
    for _ in range(_SUCCESSOR_PASSES):
        if not families:
            break
        rows = executor.execute(
            update(TOKENS)
            .where(condition, TOKENS.c.family_id.in_(families), TOKENS.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(TOKENS.c.family_id, TOKENS.c.rotated_at)
        ).all()
        revoked += len(rows)
        headed = {row.family_id for row in rows if row.rotated_at is None}
        families = sorted({row.family_id for row in rows} - headed)
    return revoked


def _literal(value: Any) -> Any:
    return null() if value is None else literal(value)


def _dialect(executor: Session | Connection) -> str:
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name

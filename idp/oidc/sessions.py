"""Provider sessions: each sign-in of a member in a browser, the clients it signed in to, and
its end, which revokes what it granted and tells those clients (OpenID Connect Back-Channel
Logout 1.0).

The browser's own state stays in the store (``idp.sessions``); this record is what outlives a
look at one browser: the account page lists it, another browser or support ends it, and the
session's next request finds it ended (``idp.accounts.authn``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from joserfc import jwt
from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp import events
from idp.channels.services import queue_logout
from idp.db import utcnow, write
from idp.keystore import KeyStore
from idp.oidc.models import AuthorizationCode, Client, ProviderSession, SessionClient, Token
from idp.oidc.revocation import revoke_tokens

# OpenID Connect Back-Channel Logout 1.0 2.4: the one event a logout token carries.
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# A session seen less than this long ago is not written again just to say so.
SEEN_INTERVAL = timedelta(seconds=60)
# A session's first code for a client, once per pair: made once, run with its values.
_SIGNED_IN_TO = {name: dialect.insert(cast("Table", SessionClient.__table__)).on_conflict_do_nothing()
                 for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
MAX_USER_AGENT = 300
# A sign-in's session: one statement on the table, sent at once (no object for the unit of work).
_NEW_SESSION = insert(cast("Table", ProviderSession.__table__))


class Ended(NamedTuple):
    """What ``end_sessions`` did: the sessions it ended, the logout tokens it queued."""

    sessions: list[str]
    notified: int


@dataclass(frozen=True)
class ActiveSession:
    """One session as the account page shows it."""

    sid: str
    user_agent: str | None
    started_at: datetime
    last_seen_at: datetime
    # Names of the clients it signed in to, in the order it did.
    clients: list[str]


class ProviderSessions:
    """Start, find, list and end the provider sessions of members.

    ``idle`` and ``absolute``: the browser sessions' timeouts; a session past either has
    ended on its own (its browser state is gone) and is no longer listed.
    """

    def __init__(self, db: Session, *, idle: int, absolute: int,
                 clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.idle = timedelta(seconds=idle)
        self.absolute = timedelta(seconds=absolute)
        self.clock = clock

    def start(self, tenant: str, account_id: str, sid: str, user_agent: str | None) -> None:
        """A completed sign-in; the caller commits."""
        now = self.clock()
        write(self.db, _NEW_SESSION, {"sid": sid, "tenant": tenant, "account_id": account_id,
                                      "user_agent": (user_agent or "")[:MAX_USER_AGENT] or None,
                                      "started_at": now, "last_seen_at": now})

    def current(self, sid: str, account_id: str) -> ProviderSession | None:
        """The session ``sid`` of the account if it has not ended; marks it seen now."""
        row = self.db.get(ProviderSession, sid)
        if row is None or row.account_id != account_id or row.ended_at is not None:
            return None
        now = self.clock()
        if now - row.last_seen_at >= SEEN_INTERVAL:
            row.last_seen_at = now
        return row

    def signed_in_to(self, sid: str, client_id: str) -> None:
        """Remember that the session ``sid`` signed in to ``client_id`` (a code was issued):
        that client is told when the session ends. Once per pair, whatever the concurrency."""
        write(self.db, _SIGNED_IN_TO[self.db.get_bind().dialect.name],
              {"sid": sid, "client_id": client_id, "first_at": self.clock()})

    def latest_client(self, sid: str) -> Client | None:
        """The client the session ``sid`` signed in to last (the latest first code it had)."""
        return self.db.scalar(
            select(Client).join(SessionClient, SessionClient.client_id == Client.client_id)
            .where(SessionClient.sid == sid)
            .order_by(SessionClient.first_at.desc()).limit(1))

    def active(self, account_id: str) -> list[ActiveSession]:
        """The account's sessions still going, the latest seen first."""
        now = self.clock()
        rows = self.db.scalars(
            select(ProviderSession).where(
                ProviderSession.account_id == account_id,
                ProviderSession.ended_at.is_(None),
                # The browser state ends with either timeout (a minute's leeway: it is seen
                # at most once a minute).
                ProviderSession.last_seen_at > now - self.idle - SEEN_INTERVAL,
                ProviderSession.started_at > now - self.absolute,
            ).order_by(ProviderSession.last_seen_at.desc(), ProviderSession.started_at.desc())
        ).all()
        names: dict[str, list[str]] = {row.sid: [] for row in rows}
        if names:
            for sid, name in self.db.execute(
                    select(SessionClient.sid, Client.name)
                    .join(Client, Client.client_id == SessionClient.client_id)
                    .where(SessionClient.sid.in_(names))
                    .order_by(SessionClient.first_at, Client.name)):
                names[sid].append(name)
        return [ActiveSession(row.sid, row.user_agent, row.started_at, row.last_seen_at,
                              names[row.sid]) for row in rows]

    def end(self, tenant: str, account_id: str, *, reason: str,
            sids: Iterable[str] | None = None, keep: str | None = None) -> Ended:
        """``end_sessions`` on this service's session and clock."""
        return end_sessions(self.db, tenant, account_id, reason=reason, sids=sids, keep=keep,
                            now=self.clock())


def end_sessions(db: Session, tenant: str, account_id: str, *, reason: str,
                 sids: Iterable[str] | None = None, keep: str | None = None,
                 now: datetime | None = None) -> Ended:
    """End sessions of the account: ``sids`` (default: all of them) but ``keep``.

    Each ends once (a concurrent end finds it ended): its tokens are revoked, refresh
    tokens included, and each client it signed in to that registered a
    ``backchannel_logout_uri`` gets a logout token, queued in the caller's transaction
    and delivered by the worker once it commits.
    """
    statement = update(ProviderSession).where(
        ProviderSession.account_id == account_id, ProviderSession.tenant == tenant,
        ProviderSession.ended_at.is_(None))
    if sids is not None:
        statement = statement.where(ProviderSession.sid.in_(list(sids)))
    if keep is not None:
        statement = statement.where(ProviderSession.sid != keep)
    ended = list(db.scalars(
        statement.values(ended_at=now or utcnow(), end_reason=reason[:64])
        .returning(ProviderSession.sid)
        .execution_options(synchronize_session=False)))
    if not ended:
        return Ended([], 0)
    # A code issued to the session and not yet redeemed would give its client tokens the session
    # no longer stands behind.
    db.execute(update(AuthorizationCode)
               .where(AuthorizationCode.sid.in_(ended), AuthorizationCode.consumed_at.is_(None))
               .values(expires_at=now or utcnow())
               .execution_options(synchronize_session=False))
    revoke_tokens(db, Token.sid.in_(ended) & (Token.account_id == account_id),
                  events.SESSION_TOKENS_REVOKED, tenant=tenant, account_id=account_id,
                  reason=reason)
    told = db.execute(
        select(SessionClient.sid, Client.client_id, Client.backchannel_logout_uri)
        .join(Client, Client.client_id == SessionClient.client_id)
        .where(SessionClient.sid.in_(ended), Client.backchannel_logout_uri.is_not(None))
        .order_by(SessionClient.first_at)).all()
    for sid, client_id, uri in told:
        queue_logout(db, tenant, client_id, uri or "", logout_claims(client_id, account_id, sid))
    events.record_event(db, events.SESSIONS_ENDED, tenant=tenant, account_id=account_id,
                        reason=reason, sessions=len(ended), notified=len(told))
    return Ended(ended, len(told))


def logout_claims(client_id: str, account_id: str, sid: str) -> str:
    """What a logout token says (Back-Channel Logout 1.0 2.4), but what is set when it is
    signed: ``iss`` (the tenant's), ``iat``, ``exp`` and ``jti``."""
    return json.dumps({"aud": client_id, "sub": account_id, "sid": sid,
                       "events": {LOGOUT_EVENT: {}}}, separators=(",", ":"))


def sign_logout_token(keystore: KeyStore, issuer: str, claims: str, ttl: int) -> str:
    """A logout token (Back-Channel Logout 1.0 2.4) from ``logout_claims``, signed like ID tokens:
    one snapshot of the active key for header and signature; ``typ`` logout+jwt (2.4, as RFC
    8417 2.3 suggests), never a nonce (2.4)."""
    signer = keystore.signer()
    now = int(time.time())
    payload = {**json.loads(claims), "iss": issuer, "iat": now, "exp": now + ttl,
               "jti": secrets.token_urlsafe(16)}
    header = {"alg": signer.alg, "kid": signer.kid, "typ": "logout+jwt"}
    return jwt.encode(header, payload, signer.key, [signer.alg])

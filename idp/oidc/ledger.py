"""Codes redeemed, refresh tokens rotated, tokens found and revoked: each one statement, one
round trip, on a connection outside any transaction.

Every check the provider can make before asking (the client, the redirect URI, the S256 of
the PKCE verifier, the lifetimes, the account's status) is part of the statement. A step that
returns a row has succeeded and what it wrote is committed; one that returns nothing changed
nothing, and the grant looks again (``find_code``, ``find_token``) to answer why. On
PostgreSQL a claim and the token it yields are one data-modifying WITH query; SQLite, which has
none, runs the same steps one after the other in one transaction that holds the write lock
(``Statements.immediate``): either way a concurrent use that finds the code or token claimed
finds its token issued too, and revokes it (RFC 6749 4.1.2, RFC 9700 4.14.2).

Statements are built once per process and run through ``Statements`` (idp.db), which on
PostgreSQL compiles each once and has psycopg prepare it on the server.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Row,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)

from idp.accounts.models import Account
from idp.db import Statements
from idp.events import TOKEN_REVOKED
from idp.oidc.claims import ACCOUNT_COLUMNS
from idp.oidc.models import AuthorizationCode, token_digest
from idp.oidc.revocation import EVENTS, TOKENS, headless_families, revoke_successors, revoke_tokens

CODES = cast("Table", AuthorizationCode.__table__)
ACCOUNTS = cast("Table", Account.__table__)

# What a token or code needs of its account: whether it is active, and the claims it may release.
ACCOUNT = (*(ACCOUNTS.c[name] for name in ACCOUNT_COLUMNS), ACCOUNTS.c.status)
ACTIVE = "active"

_now = bindparam("p_now", type_=DateTime)
_tenant = bindparam("p_tenant", type_=String)
_client_id = bindparam("p_client_id", type_=String)
_digest = bindparam("p_digest", type_=String)
_refresh_digest = bindparam("p_refresh_digest", type_=String)
# A statement that reaches PostgreSQL after the request's deadline changes nothing (see
# idp.web.transactions): the database's own clock at the time it runs, in naive UTC.
_before_deadline = func.timezone("UTC", func.clock_timestamp()) < bindparam("p_deadline", type_=DateTime)


@dataclass(frozen=True)
class Issue:
    """The credentials a grant is about to hand out; only their digests are stored."""

    tenant: str
    client_id: str
    access_token: str
    # Offered by the grant; a code's grant stores it only if its scope has offline_access.
    refresh_token: str | None
    expires_in: int
    now: datetime
    # Past it, the statement changes nothing (PostgreSQL).
    deadline: datetime

    def params(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "client_id": self.client_id, "now": self.now,
            "deadline": self.deadline,
            "access_digest": token_digest(self.access_token),
            "refresh_digest": token_digest(self.refresh_token) if self.refresh_token else None,
            "expires_in": self.expires_in,
        }


def _bound(**values: Any) -> dict[str, Any]:
    """Statement parameters, named apart from any column (an UPDATE would set a column whose name
    a parameter has)."""
    return {f"p_{name}": value for name, value in values.items()}


def _account_is_active(account_id: ColumnElement[Any]) -> ColumnElement[bool]:
    return exists().where(ACCOUNTS.c.id == account_id, ACCOUNTS.c.status == ACTIVE)


def _has_scope(scope: ColumnElement[Any], needle: str | ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the space-separated ``scope`` has the value ``needle`` names (see ``_needle``)."""
    return (" " + scope + " ").contains(needle, escape="/")


def _needle(name: str) -> str:
    """A scope value as ``_has_scope`` looks for it: between spaces, LIKE's wildcards escaped."""
    return " " + name.replace("/", "//").replace("%", "/%").replace("_", "/_") + " "


# -- The authorization code grant (RFC 6749 4.1.3, 4.1.4) ----------------------------------------

_CODE_FIELDS = ("id", "account_id", "scope", "nonce", "claims", "auth_time", "acr", "amr", "sid",
                "code_challenge", "code_challenge_method")

_CLAIM_CODE = (
    update(CODES)
    .where(
        CODES.c.code_digest == _digest,
        CODES.c.client_id == _client_id,
        CODES.c.consumed_at.is_(None),
        CODES.c.expires_at > _now,
        CODES.c.redirect_uri == bindparam("p_redirect_uri", type_=String),
        or_(
            and_(CODES.c.code_challenge == bindparam("p_challenge", type_=String),
                 CODES.c.code_challenge_method == "S256"),
            and_(CODES.c.code_challenge.is_(None), bindparam("p_bare_allowed", type_=Boolean)),
        ),
        _account_is_active(CODES.c.account_id),
    )
    .values(consumed_at=_now)
    .returning(*(CODES.c[name] for name in _CODE_FIELDS))
)


def _token_from_code(code: Any, refresh_expires_at: ColumnElement[Any]):
    """The token row a claimed code yields, selected from ``code`` (the claim's rows or the table)."""
    refresh = _has_scope(code.c.scope, _needle("offline_access")) & _refresh_digest.isnot(None)
    values = {
        "tenant": _tenant, "client_id": _client_id, "account_id": code.c.account_id,
        "access_token_digest": bindparam("p_access_digest", type_=String),
        "refresh_token_digest": case((refresh, _refresh_digest), else_=null()),
        "refresh_expires_at": case((refresh, refresh_expires_at), else_=null()),
        "scope": code.c.scope, "claims": code.c.claims, "issued_at": _now,
        "expires_in": bindparam("p_expires_in", type_=Integer),
        "family_id": bindparam("p_family_id", type_=String), "code_id": code.c.id,
        "auth_time": code.c.auth_time, "acr": code.c.acr, "amr": code.c.amr, "sid": code.c.sid,
    }
    return insert(TOKENS).from_select(list(values), select(*values.values()).select_from(code))


def _redeemed(code: Any, token: Any):
    """What the token response needs: the code's sign-in, the account's claims, whether a refresh
    token was stored."""
    return (
        select(*(code.c[name] for name in _CODE_FIELDS if name != "id"), code.c.id.label("code_id"),
               token.c.refresh_token_digest.isnot(None).label("refresh"), *ACCOUNT)
        .select_from(code.join(ACCOUNTS, ACCOUNTS.c.id == code.c.account_id)
                     .join(token, token.c.code_id == code.c.id))
    )


def _redeem_in_one() -> Any:
    claimed = _CLAIM_CODE.where(_before_deadline).cte("claimed")
    # The family ends refresh_ttl seconds after the sign-in (RFC 9700 4.14.2), in naive UTC.
    ttl = bindparam("p_refresh_ttl", type_=Integer)
    ends = func.timezone("UTC", func.to_timestamp(claimed.c.auth_time + ttl))
    stored = _token_from_code(claimed, ends).returning(TOKENS.c.code_id, TOKENS.c.refresh_token_digest)
    return _redeemed(claimed, stored.cte("stored"))


_REDEEM = _redeem_in_one()
_CLAIMED_CODE = CODES.select().where(CODES.c.id == bindparam("p_code_id")).subquery("claimed")
_STORE_FROM_CODE = _token_from_code(_CLAIMED_CODE, bindparam("p_refresh_expires_at", type_=DateTime))
_REDEEMED = _redeemed(_CLAIMED_CODE, TOKENS)


def redeem_code(statements: Statements, issue: Issue, *, code: str, redirect_uri: str | None,
                challenge: str | None, bare_allowed: bool, refresh_ttl: int,
                family_id: str) -> Row[Any] | None:
    """Consume the code and store the token it yields, if every check passes.

    ``challenge``: the S256 of the verifier presented; ``bare_allowed``: whether a code issued
    without a challenge may be redeemed (RFC 7636 4.6, RFC 9700 2.1.1). None if the code is not
    (or no longer) redeemable as presented: nothing was changed.
    """
    params = _bound(**issue.params(), digest=token_digest(code), redirect_uri=redirect_uri,
                    challenge=challenge, bare_allowed=bare_allowed, family_id=family_id,
                    refresh_ttl=refresh_ttl)
    if statements.postgresql:
        return statements.first(_REDEEM, params)
    with statements.immediate() as connection:
        claimed = connection.execute(_CLAIM_CODE, params).first()
        if claimed is None:
            return None
        ends = datetime.fromtimestamp(claimed.auth_time + refresh_ttl, UTC).replace(tzinfo=None)
        params.update(_bound(code_id=claimed.id, refresh_expires_at=ends))
        connection.execute(_STORE_FROM_CODE, params)
        return connection.execute(_REDEEMED, params).first()


_FIND_CODE: Any = (
    select(*(CODES.c[name] for name in _CODE_FIELDS), CODES.c.tenant, CODES.c.client_id,
           CODES.c.redirect_uri, CODES.c.expires_at, CODES.c.consumed_at, *ACCOUNT)
    .join(ACCOUNTS, ACCOUNTS.c.id == CODES.c.account_id)
    .where(CODES.c.code_digest == _digest, CODES.c.client_id == _client_id)
)


def find_code(statements: Statements, code: str, client_id: str) -> Row[Any] | None:
    """The code as stored, with its account, whatever its state."""
    return statements.first(_FIND_CODE, _bound(digest=token_digest(code), client_id=client_id))


# -- The refresh token grant (RFC 6749 6) -------------------------------------------------------

_ROTATED_FIELDS = ("id", "account_id", "scope", "refresh_scope", "claims", "refresh_expires_at",
                   "family_id", "code_id", "auth_time", "acr", "amr", "sid")


def _granted(token: Any) -> ColumnElement[Any]:
    return func.coalesce(token.c.refresh_scope, token.c.scope)


def _claim_refresh(scopes: int):
    """Mark the presented refresh token rotated if usable and the ``scopes`` requested (bound as
    p_scope_0 …) are all within its grant (RFC 6749 6)."""
    return (
        update(TOKENS)
        .where(
            TOKENS.c.refresh_token_digest == _digest,
            TOKENS.c.tenant == _tenant,
            TOKENS.c.client_id == _client_id,
            TOKENS.c.rotated_at.is_(None),
            TOKENS.c.revoked_at.is_(None),
            TOKENS.c.refresh_expires_at > _now,
            _account_is_active(TOKENS.c.account_id),
            *(_has_scope(_granted(TOKENS), bindparam(f"p_scope_{n}", type_=String)) for n in range(scopes)),
        )
        .values(rotated_at=_now)
        .returning(*(TOKENS.c[name] for name in _ROTATED_FIELDS))
    )


def _token_from_refresh(old: Any):
    """The next token of the family, from the rotated row ``old``: the access token's scope is the
    one asked or the grant's, the grant (refresh_scope) kept whole."""
    scope = func.coalesce(bindparam("p_scope", type_=String), _granted(old))
    values = {
        "tenant": _tenant, "client_id": _client_id, "account_id": old.c.account_id,
        "access_token_digest": bindparam("p_access_digest", type_=String),
        "refresh_token_digest": _refresh_digest, "refresh_expires_at": old.c.refresh_expires_at,
        "scope": scope, "refresh_scope": func.nullif(_granted(old), scope), "claims": old.c.claims,
        "issued_at": _now, "expires_in": bindparam("p_expires_in", type_=Integer),
        "family_id": old.c.family_id, "code_id": old.c.code_id, "auth_time": old.c.auth_time,
        "acr": old.c.acr, "amr": old.c.amr, "sid": old.c.sid,
    }
    return insert(TOKENS).from_select(list(values), select(*values.values()).select_from(old))


def _rotated(old: Any):
    return (
        select(_granted(old).label("granted"), old.c.claims, old.c.auth_time, old.c.acr, old.c.amr,
               old.c.sid, *ACCOUNT)
        .select_from(old.join(ACCOUNTS, ACCOUNTS.c.id == old.c.account_id))
    )


@functools.cache
def _rotate_in_one(scopes: int) -> Any:
    old = _claim_refresh(scopes).where(_before_deadline).cte("old")
    stored = _token_from_refresh(old).returning(TOKENS.c.id).cte("stored")
    return _rotated(old).add_cte(stored)


_OLD_TOKEN = TOKENS.select().where(TOKENS.c.id == bindparam("p_old_id")).subquery("old")
_STORE_FROM_REFRESH = _token_from_refresh(_OLD_TOKEN)
_ROTATED = _rotated(_OLD_TOKEN)


def rotate_refresh_token(statements: Statements, issue: Issue, *, refresh_token: str,
                         scope: str | None) -> Row[Any] | None:
    """Rotate a usable refresh token of this client and store the family's next token.

    ``scope``: the narrower scope asked for the access token, all within the grant. None if the
    token is unknown, not this client's, rotated, revoked, expired, its account inactive or the
    scope wider than the grant: nothing was changed.
    """
    asked = scope.split() if scope else []
    params = _bound(**issue.params(), digest=token_digest(refresh_token), scope=scope,
                    **{f"scope_{n}": _needle(name) for n, name in enumerate(asked)})
    if statements.postgresql:
        return statements.first(_rotate_in_one(len(asked)), params)
    with statements.immediate() as connection:
        old = connection.execute(_claim_refresh(len(asked)), params).first()
        if old is None:
            return None
        params["p_old_id"] = old.id
        connection.execute(_STORE_FROM_REFRESH, params)
        return connection.execute(_ROTATED, params).first()


# -- Tokens presented to the other endpoints -----------------------------------------------------

_TOKEN_FIELDS = ("id", "tenant", "client_id", "account_id", "scope", "refresh_scope", "claims",
                 "issued_at", "expires_in", "refresh_expires_at", "family_id", "code_id",
                 "auth_time", "acr", "amr", "sid", "rotated_at", "revoked_at")
_KIND = case((TOKENS.c.access_token_digest == _digest, "access_token"), else_="refresh_token")


# What the UserInfo endpoint needs of an access token (RFC 6750 3.1, OIDC Core 5.3).
_ACCESS_FIELDS = ("client_id", "scope", "claims", "issued_at", "expires_in", "revoked_at")


def _token_query(fields: tuple[str, ...], *account: Any):
    return (
        select(*(TOKENS.c[name].label(f"token_{name}") if name in ("id", "tenant") else TOKENS.c[name]
                 for name in fields), _KIND.label("kind"), *account)
        .join(ACCOUNTS, ACCOUNTS.c.id == TOKENS.c.account_id)
        .where(TOKENS.c.tenant == _tenant)
    )


_FIND_TOKEN = _token_query(_TOKEN_FIELDS, ACCOUNTS.c.status).where(
    or_(TOKENS.c.access_token_digest == _digest, TOKENS.c.refresh_token_digest == _digest))
_FIND_ACCESS_TOKEN = _token_query(_ACCESS_FIELDS, *ACCOUNT).where(TOKENS.c.access_token_digest == _digest)


def find_token(statements: Statements, token: str, tenant: str) -> Row[Any] | None:
    """The token row either of whose credentials is ``token`` (``kind`` says which), with its
    account's status."""
    return statements.first(_FIND_TOKEN, _bound(digest=token_digest(token), tenant=tenant))


def find_access_token(statements: Statements, token: str, tenant: str) -> Row[Any] | None:
    """The token row whose access token is ``token``, with its account's claims."""
    return statements.first(_FIND_ACCESS_TOKEN, _bound(digest=token_digest(token), tenant=tenant))


# -- Revocation (RFC 7009 2.1) ------------------------------------------------------------------

def _revoke_in_one() -> Any:
    target = (
        select(TOKENS.c.id, TOKENS.c.family_id, TOKENS.c.account_id, TOKENS.c.client_id,
               _KIND.label("kind"))
        .where(TOKENS.c.tenant == _tenant,
               or_(TOKENS.c.access_token_digest == _digest, TOKENS.c.refresh_token_digest == _digest))
        .cte("target")
    )
    ours = target.c.client_id == _client_id
    revoked = (
        update(TOKENS)
        .where(ours, _before_deadline, TOKENS.c.revoked_at.is_(None),
               or_(TOKENS.c.id == target.c.id,
                   and_(target.c.kind == "refresh_token", TOKENS.c.family_id == target.c.family_id)))
        .values(revoked_at=_now)
        .returning(TOKENS.c.family_id, TOKENS.c.rotated_at)
        .cte("revoked")
    )
    count = select(func.count()).select_from(revoked).scalar_subquery()
    recorded = insert(EVENTS).from_select(
        ["created_at", "tag", "tenant", "account_id", "client_id", "data"],
        select(_now, literal(TOKEN_REVOKED), _tenant, target.c.account_id, target.c.client_id,
               func.json_build_object("revoked_tokens", count, "kind", target.c.kind))
        .where(ours, _before_deadline),
    ).returning(EVENTS.c.id).cte("recorded")
    done = exists(select(recorded.c.id))
    return select(target.c.client_id, target.c.kind, target.c.family_id, done.label("done"),
                  headless_families(revoked).label("headless")).add_cte(revoked)


_REVOKE = _revoke_in_one()


class Revoked(NamedTuple):
    client_id: str
    kind: str
    done: bool


def revoke_presented(statements: Statements, token: str, *, tenant: str, client_id: str,
                     now: datetime, deadline: datetime) -> Revoked | None:
    """Revoke the token ``client_id`` presents and record it (RFC 7009 2.1): a refresh token ends
    its family, an access token its own row (which holds the refresh token issued with it).

    Returns the token's ``client_id``, ``kind`` and whether it was ``done``: nothing is revoked
    if the token is another client's, or past the deadline. None if the token is unknown here.
    """
    params = _bound(digest=token_digest(token), tenant=tenant, client_id=client_id, now=now,
                    deadline=deadline)
    if statements.postgresql:
        row = statements.first(_REVOKE, params)
        if row is None:
            return None
        if row.kind == "refresh_token" and row.headless:
            revoke_successors(statements.connection, TOKENS.c.family_id == row.family_id, row.headless, now)
        return Revoked(row.client_id, row.kind, row.done)
    found = find_token(statements, token, tenant)
    if found is None or found.client_id != client_id:
        return None if found is None else Revoked(found.client_id, found.kind, False)
    family = found.kind == "refresh_token"
    condition = TOKENS.c.family_id == found.family_id if family else TOKENS.c.id == found.token_id
    revoke(statements, condition, TOKEN_REVOKED, tenant=tenant, account_id=found.account_id,
           client_id=client_id, now=now, kind=found.kind)
    return Revoked(found.client_id, found.kind, True)


def revoke(statements: Statements, condition: ColumnElement[bool], tag: str, **fields: Any) -> int:
    """``revoke_tokens`` outside any transaction: the revocation and its audit row stand or fall
    together, PostgreSQL's as one statement, SQLite's in one transaction."""
    if statements.postgresql:
        return revoke_tokens(statements.connection, condition, tag, **fields)
    with statements.immediate() as connection:
        return revoke_tokens(connection, condition, tag, **fields)

"""Who is signed in, per tenant, in this browser session, and how strongly.

The session holds one entry per tenant: the account, when and how it
authenticated. Levels (acr) are honest about what was proven: a password
alone, a password plus a one-time code, or a passkey (``idp.accounts.levels``).
"""

from __future__ import annotations

import time

from flask import g, request, session
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from idp.accounts.levels import Authentication
from idp.accounts.models import Account
from idp.accounts.services import EndedSessions
from idp.extensions import find_service, services
from idp.oidc.models import ProviderSession
from idp.oidc.sessions import ProviderSessions
from idp.records import record
from idp.tenancy import Tenant

# One statement object for every signed-in page, so that its cache key is computed once.
_ACCOUNT_AND_SESSION = (select(Account, ProviderSession)
                        .outerjoin(ProviderSession, ProviderSession.sid == bindparam("sid"))
                        .where(Account.id == bindparam("account_id")))
# The request's ``g`` key for the sign-ins it made (``sign_in``), by tenant: the answer that
# signs the member in also issues the code, and what the sign-in just proved is not read back.
_MADE_NOW = "sign_ins_made_now"


def current_authentication(tenant: Tenant) -> Authentication | None:
    entry = (session.get("auth") or {}).get(tenant.slug)
    return Authentication(**entry) if entry else None


def session_account(db: Session, tenant: Tenant) -> tuple[Authentication, Account] | None:
    """The signed-in member of this tenant, if the sign-in still stands.

    It does not once the account is disabled, or its password changed after this sign-in,
    or a change of factor ended its sessions (``EndedSessions``, SPEC §6): this browser is
    then signed out of the tenant.
    """
    authentication = current_authentication(tenant)
    if authentication is None:
        return None
    made_now = g.get(_MADE_NOW, {}).get(tenant.slug)
    if made_now is not None and made_now[0] == authentication:
        return made_now  # proven by this very request, and nothing changed it since
    # The account and its provider session in one query; ProviderSessions.current finds the
    # session loaded.
    found = db.execute(_ACCOUNT_AND_SESSION, {"account_id": authentication.account_id,
                                              "sid": authentication.sid}).first()
    account = found[0] if found else None
    if account is None or not account.is_active or account.tenant != tenant.slug:
        return None
    if (authentication.password_version != _password_version(account)
            or _ended(authentication)
            or find_service(ProviderSessions).current(authentication.sid, account.id) is None):
        _forget(tenant)
        return None
    return authentication, account


def _ended(authentication: Authentication) -> bool:
    since = authentication.since or 0.0
    # The record of a change lasts as long as a session may; so must the entry it ends, even
    # in a session kept alive by a later sign-in to the other tenant.
    lifetime = services().settings.session_absolute_timeout
    if authentication.since is not None and since + lifetime <= time.time():
        return True
    ended = find_service(EndedSessions).ended_before(authentication.account_id)
    return ended is not None and since < ended


def _forget(tenant: Tenant) -> None:
    entries = dict(session.get("auth") or {})
    entries.pop(tenant.slug, None)
    session["auth"] = entries


def _password_version(account: Account) -> str | None:
    changed = account.password_changed_at
    return changed.isoformat() if changed else None


def sign_in(tenant: Tenant, account: Account, *, amr: list[str], acr: str) -> Authentication:
    """Record a completed sign-in; the session gets a new id (fixation defence)."""
    now = time.time()
    authentication = Authentication(
        account_id=account.id, auth_time=int(now), amr=amr, acr=acr,
        password_version=_password_version(account), since=now,
    )
    session.regenerate()  # type: ignore[attr-defined]
    entries = dict(session.get("auth") or {})
    previous = entries.get(tenant.slug)
    sessions = find_service(ProviderSessions)
    if previous and previous["account_id"] == account.id and sessions.current(
            previous["sid"], account.id) is not None:
        # Signing in again in the same browser (prompt=login, a stronger level): the same
        # provider session goes on, with its sid, its portals and their tokens.
        authentication.sid = previous["sid"]
    else:
        if previous:
            # Another member's sign-in over this one in this browser: the earlier one is over.
            sessions.end(tenant.slug, previous["account_id"], sids=[previous["sid"]],
                         reason="replaced")
        sessions.start(tenant.slug, account.id, authentication.sid,
                       request.headers.get("User-Agent"))
    entries[tenant.slug] = record(authentication)
    session["auth"] = entries
    g.setdefault(_MADE_NOW, {})[tenant.slug] = (authentication, account)
    return authentication


def renew(tenant: Tenant, account: Account) -> None:
    """Keep this browser signed in after a change of factor ended the account's other
    sessions (``end_other_sign_ins``), under a new session id. What the sign-in proved, and
    when, stays as it was."""
    entries = dict(session.get("auth") or {})
    entry = entries.get(tenant.slug)
    if not entry or entry.get("account_id") != account.id:
        return
    # Not before the change's own instant, whatever the clocks of the nodes say.
    since = max(time.time(), find_service(EndedSessions).ended_before(account.id) or 0.0)
    entries[tenant.slug] = {**entry, "password_version": _password_version(account),
                            "since": since}
    session.regenerate()  # type: ignore[attr-defined]
    session["auth"] = entries


def sign_out(tenant: Tenant, *, reason: str = "logout") -> Authentication | None:
    """Sign this browser out of the tenant: its provider session ends, with the tokens it
    granted, and the clients it signed in to are told (``ProviderSessions.end``)."""
    entries = dict(session.get("auth") or {})
    entry = entries.pop(tenant.slug, None)
    if entries:
        session["auth"] = entries
        session.regenerate()  # type: ignore[attr-defined]
    else:
        session.end()  # type: ignore[attr-defined]
    if not entry:
        return None
    authentication = Authentication(**entry)
    find_service(ProviderSessions).end(tenant.slug, authentication.account_id,
                                       sids=[authentication.sid], reason=reason)
    return authentication

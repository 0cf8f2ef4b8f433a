"""Who is signed in, per tenant, in this browser session, and how strongly.

The session holds one entry per tenant: the account, when and how it
authenticated. Levels (acr) are honest about what was proven: a password
alone, a password plus a one-time code, or a passkey (``idp.accounts.levels``).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from flask import session
from sqlalchemy.orm import Session

from idp.accounts.levels import Authentication
from idp.accounts.models import Account
from idp.tenancy import Tenant


def current_authentication(tenant: Tenant) -> Authentication | None:
    entry = (session.get("auth") or {}).get(tenant.slug)
    return Authentication(**entry) if entry else None


def session_account(db: Session, tenant: Tenant) -> tuple[Authentication, Account] | None:
    """The signed-in member of this tenant, if the sign-in still stands.

    It does not once the account is disabled, or its password changed after
    this sign-in (a new password ends every other session, SPEC §6).
    """
    authentication = current_authentication(tenant)
    if authentication is None:
        return None
    account = db.get(Account, authentication.account_id)
    if account is None or not account.is_active or account.tenant != tenant.slug:
        return None
    if authentication.password_version != _password_version(account):
        return None
    return authentication, account


def _password_version(account: Account) -> str | None:
    changed = account.password_changed_at
    return changed.isoformat() if changed else None


def sign_in(tenant: Tenant, account: Account, *, amr: list[str], acr: str) -> Authentication:
    """Record a completed sign-in; the session gets a new id (fixation defence)."""
    authentication = Authentication(
        account_id=account.id, auth_time=int(time.time()), amr=amr, acr=acr,
        password_version=_password_version(account),
    )
    session.regenerate()  # type: ignore[attr-defined]
    entries = dict(session.get("auth") or {})
    entries[tenant.slug] = asdict(authentication)
    session["auth"] = entries
    return authentication


def sign_out(tenant: Tenant) -> Authentication | None:
    entries = dict(session.get("auth") or {})
    entry = entries.pop(tenant.slug, None)
    if entries:
        session["auth"] = entries
        session.regenerate()  # type: ignore[attr-defined]
    else:
        session.end()  # type: ignore[attr-defined]
    return Authentication(**entry) if entry else None

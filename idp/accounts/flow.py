"""The steps of a sign-in, across pages: password, then (unless trusted) a one-time code.

Between the steps, the browser session holds a *pending* sign-in per tenant:
who proved their password, for which interaction, and the current code
challenge. Only when the last step succeeds does ``complete`` sign the member
in (new session id) and resume the authorization request.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from flask import redirect, session, url_for

from idp.accounts.authn import sign_in
from idp.accounts.migration import needs_migration
from idp.accounts.models import Account
from idp.mfa.services import Challenge
from idp.oidc import authorization
from idp.oidc.interactions import Interaction
from idp.tenancy import Tenant

# A pending sign-in older than this starts again from the password.
PENDING_TTL = 15 * 60
# Interaction reasons after which a trusted device does not replace a fresh code.
FRESH_CODE_REASONS = {"acr_values", "max_age"}


@dataclass
class Pending:
    account_id: str
    interaction: str | None
    # "login" after a password; "step_up" when a signed-in member needs a stronger level.
    reason: str
    started_at: float
    challenge: dict | None = None
    # Set once every factor is proven, while the member still has terms to accept.
    amr: list[str] | None = None
    acr: str | None = None

    @property
    def current_challenge(self) -> Challenge | None:
        return Challenge(**self.challenge) if self.challenge else None


def pending(tenant: Tenant) -> Pending | None:
    entry = (session.get("pending") or {}).get(tenant.slug)
    if not entry:
        return None
    state = Pending(**entry)
    if time.time() - state.started_at > PENDING_TTL:
        clear_pending(tenant)
        return None
    return state


def save_pending(tenant: Tenant, state: Pending) -> None:
    entries = dict(session.get("pending") or {})
    entries[tenant.slug] = asdict(state)
    session["pending"] = entries


def clear_pending(tenant: Tenant) -> None:
    entries = dict(session.get("pending") or {})
    if entries.pop(tenant.slug, None) is not None:
        session["pending"] = entries


def begin_second_factor(tenant: Tenant, account_id: str, interaction: Interaction | None,
                        reason: str):
    save_pending(tenant, Pending(account_id=account_id, interaction=interaction.id if interaction
                                 else None, reason=reason, started_at=time.time()))
    return redirect(url_for("mfa.choose"), 303)


def needs_fresh_code(interaction: Interaction | None) -> bool:
    return bool(interaction and FRESH_CODE_REASONS & set(interaction.reasons))


def needs_first_sign_in_step(tenant: Tenant, account: Account) -> bool:
    """Terms of the current version not yet accepted, or preferences never set (SPEC §3.2)."""
    return account.terms_version != tenant.terms_version or (
        tenant.communication_preferences and account.preferences is None)


def complete(tenant: Tenant, account: Account, *, amr: list[str], acr: str,
             interaction_id: str | None):
    """Sign the member in and go back to the authorization request (or the signed-in page).

    A legacy account during the email-as-login migration updates its identifier first
    (SPEC §7), and a member with terms to accept (first sign-in, or a new version) goes
    through that page; meanwhile the proven factors wait in the pending sign-in.
    """
    step = ("contact.update_identifier" if needs_migration(tenant, account)
            else "accounts.terms" if needs_first_sign_in_step(tenant, account) else None)
    if step is not None:
        state = pending(tenant) or Pending(account_id=account.id, interaction=interaction_id,
                                           reason="login", started_at=time.time())
        state.amr, state.acr, state.interaction = amr, acr, interaction_id
        save_pending(tenant, state)
        return redirect(url_for(step), 303)
    clear_pending(tenant)
    sign_in(tenant, account, amr=amr, acr=acr)
    store = authorization.interactions()
    interaction = store.load(interaction_id, tenant.slug) if interaction_id else None
    if interaction is None:
        return redirect(url_for("accounts.signed_in"), 303)
    interaction.login_done = True
    store.save(interaction)
    return redirect(url_for("oidc.resume", interaction=interaction.id), 303)

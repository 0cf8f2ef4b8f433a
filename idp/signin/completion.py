"""The last step of a sign-in: sign the member in and hand the interaction back to the protocol.

A legacy account during the email-as-login migration updates its identifier first
(SPEC §7), and a member with terms to accept (first sign-in, or a new version) goes
through that page; meanwhile the proven factors wait in the pending sign-in.
"""

from __future__ import annotations

import time

from flask import make_response, redirect, url_for

from idp.accounts.authn import sign_in
from idp.accounts.migration import needs_migration
from idp.accounts.models import Account
from idp.extensions import find_service
from idp.oidc.interaction_api import InteractionApi, Login
from idp.oidc.interactions import Interaction
from idp.signin import cookies
from idp.signin.services import SignIn
from idp.signin.state import Pending, clear_pending, pending, reachable, save_pending
from idp.tenancy import Tenant


def begin_second_factor(tenant: Tenant, account: Account, interaction: Interaction | None,
                        reason: str):
    save_pending(tenant, Pending(account_id=account.id, interaction=interaction.id if interaction
                                 else None, reason=reason, started_at=time.time(),
                                 reachable=reachable(account)))
    return redirect(url_for("signin.choose"), 303)


def needs_first_sign_in_step(tenant: Tenant, account: Account) -> bool:
    """Terms of the current version not yet accepted, or preferences never set (SPEC §3.2)."""
    return account.terms_version != tenant.terms_version or (
        tenant.communication_preferences and account.preferences is None)


def finish_sign_in(tenant: Tenant, account: Account, *, amr: list[str], acr: str,
                   interaction_id: str | None):
    """The last factor is proven: tell the member of a new browser, and sign in."""
    known = cookies.known_accounts()
    new_browser = account.id not in known
    if new_browser:
        find_service(SignIn).notify_new_browser(tenant, account, cookies.browser_label())
    response = complete(tenant, account, amr=amr, acr=acr, interaction_id=interaction_id)
    if new_browser:
        cookies.set_known_accounts(response, [account.id, *known])
    return response


def complete(tenant: Tenant, account: Account, *, amr: list[str], acr: str,
             interaction_id: str | None):
    """Sign the member in and go back to the authorization request (or the signed-in page)."""
    step = ("contact.update_identifier" if needs_migration(tenant, account)
            else "signin.terms" if needs_first_sign_in_step(tenant, account) else None)
    if step is not None:
        state = pending(tenant) or Pending(account_id=account.id, interaction=interaction_id,
                                           reason="login", started_at=time.time())
        state.amr, state.acr, state.interaction = amr, acr, interaction_id
        save_pending(tenant, state)
        return redirect(url_for(step), 303)
    clear_pending(tenant)
    sign_in(tenant, account, amr=amr, acr=acr)
    api = find_service(InteractionApi)
    interaction = api.load(interaction_id, tenant.slug)
    if interaction is None:
        return redirect(url_for("accounts.signed_in"), 303)
    return make_response(api.finish(interaction, login=Login(account.id)))

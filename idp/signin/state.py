"""The pending sign-in: who proved their password, for which interaction, and the current code
challenge, kept in the browser session per tenant until the last step completes."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from urllib.parse import urlencode

from flask import session, url_for
from flask_babel import gettext as _

from idp.accounts.models import Account
from idp.channels.masking import mask_email, mask_phone
from idp.deadlines import Deadline, sign_in_deadline
from idp.errors import SignInExpired
from idp.extensions import find_service, services
from idp.mfa.services import Challenge
from idp.oidc.interactions import Interaction, Interactions
from idp.records import record
from idp.tenancy import Tenant
from idp.tokens import PUSHED_RESTART, TokenService

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
    # When the password was proven, or the member last asked for more time.
    started_at: float
    challenge: dict | None = None
    # The challenge ``challenge`` replaced (a code asked again, or by the other channel): its
    # code, typed, is said replaced rather than wrong. Never accepted: its entry in the store is gone.
    replaced: dict | None = None
    # The message carrying the challenge's code (withdrawn if still held back when replaced).
    code_message: int | None = None
    # Set once every factor is proven, while the member still has terms to accept.
    amr: list[str] | None = None
    acr: str | None = None
    # Where the account can get a code (``reachable``) as of the password or the last code sent:
    # the code's pages show it without reading the account. None in a sign-in pending from before.
    reachable: dict[str, str] | None = None

    @property
    def current_challenge(self) -> Challenge | None:
        return Challenge(**self.challenge) if self.challenge else None

    @property
    def replaced_challenge(self) -> Challenge | None:
        return Challenge(**self.replaced) if self.replaced else None


_PENDING_FIELDS = frozenset(field.name for field in fields(Pending))


def reachable(account: Account) -> dict[str, str]:
    """Where ``account`` can get a code, masked as the pages show it: its email, and its mobile
    only once proven by a code it received (one merely typed, or vouched for by support, might be
    anyone's)."""
    ways = {}
    if account.email:
        ways["email"] = mask_email(account.email)
    if account.phone_number and account.phone_number_verified:
        ways["sms"] = mask_phone(account.phone_number)
    return ways


def pending(tenant: Tenant) -> Pending | None:
    entry = (session.get("pending") or {}).get(tenant.slug)
    if not entry:
        return None
    # A field this version does not know was written by a newer one (a deployment under way):
    # left out, the sign-in goes on as this version takes it.
    state = Pending(**{name: value for name, value in entry.items() if name in _PENDING_FIELDS})
    if time.time() - state.started_at > PENDING_TTL:
        clear_pending(tenant)
        return None
    return state


def required_pending(tenant: Tenant, *, proven: bool = False) -> Pending:
    """The pending sign-in, or SignInExpired; ``proven``: every factor already proven."""
    state = pending(tenant)
    if state is None or (proven and not state.amr):
        raise SignInExpired()
    return state


def save_pending(tenant: Tenant, state: Pending) -> None:
    entries = dict(session.get("pending") or {})
    entries[tenant.slug] = record(state)
    session["pending"] = entries


def clear_pending(tenant: Tenant) -> None:
    entries = dict(session.get("pending") or {})
    if entries.pop(tenant.slug, None) is not None:
        session["pending"] = entries


def interaction(tenant: Tenant, interaction_id: str | None) -> Interaction | None:
    """The parked authorization request a page names, if it is still this browser's."""
    return find_service(Interactions).load(interaction_id, tenant.slug) if interaction_id else None


def required_interaction(tenant: Tenant, interaction_id: str | None) -> Interaction | None:
    """The interaction a page names (None when it names none); SignInExpired when it is gone."""
    found = interaction(tenant, interaction_id)
    if interaction_id and found is None:
        raise SignInExpired()
    return found


def needs_fresh_code(found: Interaction | None) -> bool:
    return bool(found and FRESH_CODE_REASONS & set(found.reasons))


@dataclass
class InProgress:
    """A sign-in under way in this browser: its parked request, its pending steps, or both."""

    interaction: Interaction | None
    state: Pending | None

    @property
    def key(self) -> str:
        """What the cap on extensions counts: this authorization request, or this member's sign-in."""
        if self.interaction is not None:
            return f"interaction:{self.interaction.id}"
        assert self.state is not None
        return f"account:{self.state.account_id}"


def in_progress(tenant: Tenant, interaction_id: str | None, *,
                with_pending: bool = True) -> InProgress | None:
    """The sign-in this page belongs to, if it is still alive (and this browser's, this tenant's).

    The sign-in page itself leaves out steps pending from an earlier password: a new one restarts them.
    """
    state = pending(tenant) if with_pending else None
    interaction_id = interaction_id or (state.interaction if state else None)
    found = interaction(tenant, interaction_id)
    if (interaction_id and found is None) or (found is None and state is None):
        return None
    return InProgress(found, state)


def deadline(found: InProgress) -> Deadline:
    """When the sign-in ends: its parked request or its pending steps, whichever first."""
    limits = []  # (seconds left, lifetime)
    if found.interaction is not None:
        limits.append((find_service(Interactions).expires_in(found.interaction),
                       services().settings.interaction_ttl))
    if found.state is not None:
        limits.append((int(found.state.started_at + PENDING_TTL - time.time()), PENDING_TTL))
    return sign_in_deadline(*min(limits))


@dataclass(frozen=True)
class SignInTime:
    """What a sign-in page shows of its time limit (macros.html, sign_in_deadline)."""

    deadline: Deadline
    interaction_id: str | None
    # Once the time is out: the same authorization request again, or the sign-in page.
    restart_url: str

    @property
    def message(self) -> str:
        return time_left_message(self.deadline)


def time_left_message(limit: Deadline) -> str:
    """The time left, in words: pages say it without JavaScript (WCAG 2.2.1)."""
    if limit.seconds_left >= 120:
        # Whole minutes, not cut short by the few seconds the page took to come.
        return _("Pour votre sécurité, il vous reste %(minutes)s minutes pour terminer votre connexion.",
                 minutes=(limit.seconds_left + 10) // 60)
    return _("Pour votre sécurité, il vous reste moins de 2 minutes pour terminer votre connexion.")


def sign_in_time(tenant: Tenant, interaction_id: str | None, *,
                 with_pending: bool = True) -> SignInTime | None:
    found = in_progress(tenant, interaction_id, with_pending=with_pending)
    if found is None:
        return None
    interaction = found.interaction
    if interaction is None:
        restart_url = url_for("signin.login")
    elif interaction.pushed:
        # The client may be required to push its requests (RFC 9126 6): the request comes back
        # signed by the provider, which validated it when it was pushed.
        restart = TokenService(services().settings.secret_key, PUSHED_RESTART).dumps(
            {"tenant": interaction.tenant, "params": interaction.params})
        restart_url = url_for("oidc.restart_pushed", token=restart)
    else:
        query = urlencode([(key, value) for key, value in interaction.params])
        restart_url = f"{url_for('oidc.authorize')}?{query}"
    return SignInTime(deadline(found), interaction.id if interaction else None, restart_url)


def extend(tenant: Tenant, found: InProgress) -> Deadline:
    """Give the sign-in its whole time again (WCAG 2.2.1); the caller caps how often."""
    if found.interaction is not None:
        find_service(Interactions).save(found.interaction)
    if found.state is not None:
        found.state.started_at = time.time()
        save_pending(tenant, found.state)
    # The session's idle timer restarts too: it carries the CSRF token and the pending steps.
    session.modified = True
    return deadline(found)

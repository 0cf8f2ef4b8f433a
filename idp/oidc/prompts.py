"""Whether the member must be asked something before the client gets a code.

node-oidc-provider's model (``lib/prompts``): a prompt is a list of named
checks; each looks at one fact of the request and returns the reason it stands
for, or None. The login prompt's checks run first; the consent prompt's only
once the member is signed in well enough (OIDC Core 3.1.2.3, 3.1.2.4).

Everything here is pure: ``authorization.py`` reads the session, the database
and the ``id_token_hint`` and hands the results over in a :class:`PromptContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from idp.accounts.levels import ACR_LEVELS, ACR_OTP, ACR_PASSWORD, acr_satisfies
from idp.oidc.claims import claims_released_by, essential_acr_values, requested_acr_values

if TYPE_CHECKING:
    from idp.accounts.levels import Authentication
    from idp.accounts.models import Account

# Reasons, as recorded on the interaction (idp.signin.state reads some of them).
NO_SESSION = "no_session"
PROMPT_LOGIN = "prompt_login"
MAX_AGE = "max_age"
ID_TOKEN_HINT = "id_token_hint"  # noqa: S105 - a reason, not a token
ACR_VALUES = "acr_values"
CONSENT = "consent"

# Prompts: the interaction page the member is sent to.
LOGIN = "login"
STEP_UP = "step_up"


class SignedIn(NamedTuple):
    """The member signed in to this tenant in this browser, and how."""

    authentication: Authentication
    account: Account


@dataclass(frozen=True)
class PromptContext:
    """What the checks may look at, gathered by the authorization endpoint."""

    signed_in: SignedIn | None
    # The request's `prompt` values (OIDC Core 3.1.2.1).
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    # The `sub` of a valid id_token_hint, None without one.
    hint_subject: str | None = None
    acr_values: tuple[str, ...] = ()
    # The parsed `claims` parameter (OIDC Core 5.5).
    claims: dict[str, Any] | None = None
    # The scopes granted: those asked that the client is registered for (unknown ones ignored).
    scopes: frozenset[str] = frozenset()
    # The member's claims asked by name through `claims` that the client may receive.
    claim_names: frozenset[str] = frozenset()
    first_party: bool = False
    # The scopes the member consented to for this client; None when never asked.
    consented_scopes: frozenset[str] | None = None
    # The claims the member allowed this client by name, beyond those scopes.
    consented_claims: frozenset[str] = frozenset()
    # What the member did in the interaction this request resumes.
    just_logged_in: bool = False
    just_consented: bool = False
    # Seconds since the epoch, as time.time() gives them.
    now: float = 0.0

    @property
    def requested_acr(self) -> list[str]:
        """The levels asked through acr_values then claims.id_token.acr, unknown ones left out.

        A level asked as a voluntary claim is held to as firmly as an essential one
        (OIDC Core 5.5.1.1 lets the provider choose).
        """
        asked = [*self.acr_values, *requested_acr_values(self.claims)]
        return [level for level in asked if level in ACR_LEVELS]


Check = Callable[[PromptContext], str | None]


def no_session(context: PromptContext) -> str | None:
    return NO_SESSION if context.signed_in is None else None


def prompt_login(context: PromptContext) -> str | None:
    # OIDC Core 3.1.2.1: prompt=login reauthenticates, once: not again on the way back.
    if context.signed_in is None or context.just_logged_in:
        return None
    return PROMPT_LOGIN if LOGIN in context.prompt else None


def max_age_exceeded(context: PromptContext) -> str | None:
    # OIDC Core 3.1.2.1: max_age is measured from auth_time; a sign-in just made meets it.
    if context.signed_in is None or context.just_logged_in or context.max_age is None:
        return None
    elapsed = context.now - context.signed_in.authentication.auth_time
    return MAX_AGE if elapsed > context.max_age else None


def other_subject(context: PromptContext) -> str | None:
    # OIDC Core 3.1.2.1: the hint names the member the client expects; another one signed in
    # must not be answered for, even right after signing in.
    if context.signed_in is None or not context.hint_subject:
        return None
    return ID_TOKEN_HINT if context.hint_subject != context.signed_in.account.id else None


def acr_not_met(context: PromptContext) -> str | None:
    # OIDC Core 3.1.2.1 and 5.5.1.1: the sign-in must reach one of the levels asked. A sign-in
    # still to come (no session, prompt=login, max_age, another member) is held to it as well:
    # on a trusted browser the password alone would only reach urn:mh:acr:pwd, and this reason
    # is what tells the sign-in page to ask for the code all the same.
    if context.just_logged_in:
        return None
    requested = context.requested_acr
    if not requested:
        return None
    signing_in_again = any(check(context) for check in REAUTHENTICATION_CHECKS)
    achieved = (ACR_PASSWORD if context.signed_in is None or signing_in_again
                else context.signed_in.authentication.acr)
    if any(acr_satisfies(achieved, level) for level in requested):
        return None
    return ACR_VALUES


def consent_missing(context: PromptContext) -> str | None:
    # First-party clients are the insurer's own services: the member is not asked.
    if context.first_party:
        return None
    consented = context.consented_scopes
    if consented is None or not context.scopes <= consented:
        return CONSENT
    # OIDC Core 5.5: claims asked by name are released like those of a scope, so the member's
    # consent must cover them too.
    covered = claims_released_by(consented) | context.consented_claims
    return None if context.claim_names <= covered else CONSENT


def prompt_consent(context: PromptContext) -> str | None:
    # OIDC Core 3.1.2.1: prompt=consent asks again, once: not again on the way back.
    if context.first_party or context.just_consented:
        return None
    return CONSENT if CONSENT in context.prompt else None


# The checks after which the member signs in again, whatever the session's level.
REAUTHENTICATION_CHECKS: tuple[Check, ...] = (no_session, prompt_login, max_age_exceeded, other_subject)
# The order is the order of the reasons recorded on the interaction.
LOGIN_CHECKS: tuple[Check, ...] = (no_session, prompt_login, max_age_exceeded, other_subject, acr_not_met)
CONSENT_CHECKS: tuple[Check, ...] = (consent_missing, prompt_consent)


def reasons(checks: Sequence[Check], context: PromptContext) -> list[str]:
    """The reasons the checks give, each once, in the checks' order."""
    return list(dict.fromkeys(reason for check in checks if (reason := check(context))))


def login_prompt(context: PromptContext, login_reasons: Sequence[str]) -> str:
    """The page for the login reasons: a fresh one-time code when only the level is short
    and a code reaches it, the sign-in page otherwise (it offers passkeys)."""
    code_suffices = any(acr_satisfies(ACR_OTP, level) for level in context.requested_acr)
    return STEP_UP if code_suffices and set(login_reasons) == {ACR_VALUES} else LOGIN


def granted_acr(achieved: str, claims: dict[str, Any] | None) -> str | None:
    """The ``acr`` the ID token states for a sign-in that reached ``achieved``.

    OIDC Core 5.5.1.1: an essential ``acr`` request with values gets one of those values: the
    session's own level, or else the highest level asked that it satisfies (a code sign-in asked
    for ``urn:mh:acr:pwd`` says ``urn:mh:acr:pwd``); None when none is met, which the
    authorization endpoint answers as a failed authentication. Voluntary requests (acr_values,
    or the claim without ``essential``) get the level reached, possibly above the one asked.
    """
    essential = essential_acr_values(claims)
    if not essential or achieved in essential:
        return achieved
    met = [level for level in ACR_LEVELS if level in essential and acr_satisfies(achieved, level)]
    return met[-1] if met else None

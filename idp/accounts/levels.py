"""What a sign-in proved: its authentication level (acr), honest about what was proven (a
password alone, a password plus a one-time code, or a passkey, SPEC §5), its methods (amr)
and its time. Plain data: the browser session keeps it (``idp.accounts.authn``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

ACR_PASSWORD = "urn:mh:acr:pwd"  # noqa: S105 - a level name, not a password
ACR_OTP = "urn:mh:acr:otp"
ACR_PASSKEY = "urn:mh:acr:phr"
# Weakest first: a level satisfies a request for itself or any level before it.
ACR_LEVELS = (ACR_PASSWORD, ACR_OTP, ACR_PASSKEY)


def acr_satisfies(achieved: str | None, requested: str) -> bool:
    if achieved not in ACR_LEVELS or requested not in ACR_LEVELS:
        return False
    return ACR_LEVELS.index(achieved) >= ACR_LEVELS.index(requested)


@dataclass
class Authentication:
    account_id: str
    auth_time: int
    amr: list[str]
    acr: str
    # The account's password_changed_at when it signed in: a later change ends this session.
    password_version: str | None = None
    # Identifies this sign-in to relying parties (OIDC Front/Back-Channel `sid`).
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # When this browser's session was signed in, or kept after a change of factor: a session
    # from before the account's latest change has ended (``accounts.authn``).
    since: float | None = None

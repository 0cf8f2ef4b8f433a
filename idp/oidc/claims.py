"""Which claims each scope releases, and the `claims` request parameter (OIDC Core 5.4, 5.5)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# Authlib ships no type information (no py.typed marker).
from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import Row

from idp.accounts.models import Account

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("given_name", "family_name", "birthdate"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "member": ("member_number", "tenant", "role", "communication_preferences"),
}
SUPPORTED_CLAIMS = sorted({"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                           "azp", "at_hash", "sid"} | {c for cs in SCOPE_CLAIMS.values() for c in cs})
RELEASABLE = {c for cs in SCOPE_CLAIMS.values() for c in cs}
# The account attributes a claim is read from, where the names differ.
_ATTRIBUTES = {"communication_preferences": "preferences"}
# What user_claims reads of an account: a query may select these columns alone.
ACCOUNT_COLUMNS = ("id", *sorted({_ATTRIBUTES.get(name, name) for name in RELEASABLE}))


class InvalidClaimsParameter(ValueError):
    """The `claims` parameter is not a JSON object of the shape OIDC Core 5.5 defines."""


def parse_claims_parameter(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidClaimsParameter("'claims' is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidClaimsParameter("'claims' must be a JSON object")
    result: dict[str, Any] = {}
    for target in ("id_token", "userinfo"):
        members = value.get(target)
        if members is None:
            continue
        if not isinstance(members, dict) or not all(
            spec is None or isinstance(spec, dict) for spec in members.values()
        ):
            raise InvalidClaimsParameter(f"'claims.{target}' must map claim names to null or objects")
        result[target] = members
    return result


def requested_acr_values(claims: dict[str, Any] | None) -> list[str]:
    """acr values asked through claims.id_token.acr (value or values)."""
    spec = ((claims or {}).get("id_token") or {}).get("acr") or {}
    if "value" in spec and isinstance(spec["value"], str):
        return [spec["value"]]
    values = spec.get("values")
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def essential_acr_values(claims: dict[str, Any] | None) -> list[str]:
    """The acr values asked through claims.id_token.acr when it is essential (OIDC Core 5.5.1)."""
    spec = ((claims or {}).get("id_token") or {}).get("acr")
    if not isinstance(spec, dict) or spec.get("essential") is not True:
        return []
    return requested_acr_values(claims)


def claims_released_by(scopes: Iterable[str]) -> frozenset[str]:
    """The member's claims the scopes release (OIDC Core 5.4)."""
    return frozenset(name for scope in scopes for name in SCOPE_CLAIMS.get(scope, ()))


def requested_claim_names(claims: dict[str, Any] | None, allowed_scopes: Iterable[str]) -> list[str]:
    """The member's claims asked by name in `claims` (either target) that a client registered for
    ``allowed_scopes`` may receive, in the order asked."""
    allowed = claims_released_by(allowed_scopes)
    names = [name for target in ("userinfo", "id_token") for name in ((claims or {}).get(target) or {})]
    return [name for name in dict.fromkeys(names) if name in allowed]


def _value(account: Account | Row[Any], name: str) -> Any:
    if name == "birthdate":
        return account.birthdate.isoformat() if account.birthdate else None
    return getattr(account, _ATTRIBUTES.get(name, name), None)


def user_claims(
    account: Account | Row[Any], scope: str, claims: dict[str, Any] | None = None, target: str = "userinfo"
) -> dict[str, Any]:
    """The member's claims released by the granted scopes plus those individually requested.

    ``account`` is the record or a row of its ``ACCOUNT_COLUMNS``."""
    names: list[str] = []
    for scope_name in scope_to_list(scope) or []:
        names.extend(SCOPE_CLAIMS.get(scope_name, ()))
    names.extend(name for name in ((claims or {}).get(target) or {}) if name in RELEASABLE)
    result: dict[str, Any] = {"sub": account.id}
    for name in dict.fromkeys(names):
        value = _value(account, name)
        if value is not None:
            result[name] = value
    return result

"""The sign-in's cookies: the trusted device ("Se souvenir de moi", per tenant, Strict) and the
accounts that already signed in from this browser (Lax): no new-browser notice for them, and
others' wrong passwords on their identifier do not slow their sign-in here (``SignIn``)."""

from __future__ import annotations

from flask import Response, request

from idp.accounts.devices import device_in_words
from idp.extensions import services
from idp.tenancy import Tenant
from idp.tokens import KNOWN_BROWSER, InvalidToken, TokenService

KNOWN_BROWSER_COOKIE = "idp-browser"
MAX_KNOWN_ACCOUNTS = 10


def _secure() -> bool:
    return services().settings.cookie_secure


def cookie_name(name: str) -> str:
    """``__Host-`` names where cookies are Secure (SPEC §9)."""
    return f"__Host-{name}" if _secure() else name


def device_cookie_name(tenant: Tenant) -> str:
    return cookie_name(f"idp-device-{tenant.slug}")


def device_cookie(tenant: Tenant) -> str | None:
    return request.cookies.get(device_cookie_name(tenant))


def set_device_cookie(response: Response, tenant: Tenant, token: str) -> None:
    _set_cookie(response, device_cookie_name(tenant), token, tenant.mfa.trusted_device_days * 86400,
                samesite="Strict")


def _known_tokens() -> TokenService:
    return TokenService(services().settings.secret_key, KNOWN_BROWSER)


def known_accounts() -> list[str]:
    """Accounts that completed a sign-in in this browser (signed: it cannot be made up)."""
    raw = request.cookies.get(cookie_name(KNOWN_BROWSER_COOKIE))
    if not raw:
        return []
    try:
        value = _known_tokens().loads(raw)
    except InvalidToken:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def set_known_accounts(response: Response, accounts: list[str]) -> None:
    _set_cookie(response, cookie_name(KNOWN_BROWSER_COOKIE),
                _known_tokens().dumps(accounts[:MAX_KNOWN_ACCOUNTS]), KNOWN_BROWSER.max_age,
                samesite="Lax")


def browser_label() -> str:
    """This browser in words, for the list of trusted browsers and the new-browser email."""
    return device_in_words(request.headers.get("User-Agent"))


def _set_cookie(response: Response, name: str, value: str, max_age: int, samesite: str) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=_secure(), httponly=True,
                        samesite=samesite)

"""What the bench's browsers read and send, without a network library: the authorization
request's parameters, the values a page's form carries, a redirect's query, a client's Basic
credentials. The async driver (``bench.driver``), the in-process flows (``bench.cpu``) and the
tests of the sign-in's floor use them."""

from __future__ import annotations

import base64
import re
import secrets
from urllib.parse import parse_qs, urlsplit

from bench.seed import CODE_CHALLENGE, REDIRECT_URI

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
OTP = re.compile(r"\b(\d{6})\b")
INTERACTION = re.compile(r'name="interaction"[^>]* value="([^"]+)"')
FLOW_SCOPE = "openid profile email member"
# The body of the newest email with a one-time code to a member (``%s``: the address), in our outbox.
OUTBOX_CODE = ("SELECT body_text FROM messages WHERE recipient = %s AND template = 'otp_code' "
               "ORDER BY id DESC LIMIT 1")


class FlowError(Exception):
    """A step answered something else than a member's browser expects."""


def authorization_params(client_id: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": FLOW_SCOPE,
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": CODE_CHALLENGE, "code_challenge_method": "S256", **extra,
    }


def query_value(url: str, name: str) -> str:
    values = parse_qs(urlsplit(url).query).get(name)
    if not values:
        raise FlowError(f"no {name} in {url[:200]}")
    return values[0]


def csrf(body: str) -> str:
    found = CSRF.search(body)
    if not found:
        raise FlowError("no CSRF token on the page")
    return found.group(1)


def interaction(body: str) -> str:
    """The interaction the sign-in page's form names."""
    found = INTERACTION.search(body)
    if not found:
        raise FlowError("no interaction on the page")
    return found.group(1)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def known_not_trusted(cookies: dict[str, str]) -> dict[str, str]:
    """A returning member's cookies less the trusted device's: a known browser (no new-device
    email) that is asked a code."""
    return {name: value for name, value in cookies.items() if "device" not in name}


def emailed_code(body: str | None) -> str:
    """The one-time code in an email's body (``OUTBOX_CODE``'s row, None when there was none)."""
    found = OTP.search(body) if body else None
    if not found:
        raise FlowError("no code in the outbox")
    return found.group(1)

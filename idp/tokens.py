"""Signed tokens, one serializer per purpose: its own salt and its own lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class InvalidToken(Exception):
    """Tampered, expired, or made for another purpose."""


@dataclass(frozen=True)
class Purpose:
    salt: str
    max_age: int


TRUSTED_DEVICE = Purpose("trusted-device", 90 * 24 * 3600)
# The tenant's [links] activation_ttl_hours applies when the link is read.
ACTIVATION = Purpose("activation", 72 * 3600)
KNOWN_BROWSER = Purpose("known-browser", 400 * 24 * 3600)
# The tenant's [links] reset_ttl_minutes applies when the link is read.
PASSWORD_RESET = Purpose("password-reset", 30 * 60)
# A pushed authorization request started again from the sign-in page once its time ran out:
# as long as the provider's session may last.
PUSHED_RESTART = Purpose("pushed-request-restart", 12 * 3600)


class TokenService:
    def __init__(self, secret_key: str, purpose: Purpose):
        self.purpose = purpose
        self._serializer = URLSafeTimedSerializer(secret_key, salt=purpose.salt)

    def dumps(self, payload: Any) -> str:
        return self._serializer.dumps(payload)

    def loads(self, token: str, max_age: int | None = None) -> Any:
        try:
            return self._serializer.loads(token, max_age=max_age or self.purpose.max_age)
        except (SignatureExpired, BadSignature) as exc:
            raise InvalidToken(str(exc)) from None

"""Named rate limits, kept in the store: test before, hit on failure, clear on success.

Each limit allows ``limit`` events per ``window`` seconds for one key (an
account, an identifier, an IP address, a phone number). Past it, callers get
``TooManyAttempts`` with the seconds to wait, and the store's TTL lifts it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from idp.store import Store


class TooManyAttempts(Exception):
    """A limit is reached; ``retry_after`` seconds until it lifts."""

    def __init__(self, limit: str, retry_after: int):
        super().__init__(f"{limit}: retry after {retry_after}s")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window: int


# The documented numbers (README, "Rate limits").
LOGIN_PER_IDENTIFIER = Limit("login:identifier", 5, 15 * 60)
LOGIN_PER_IP = Limit("login:ip", 30, 15 * 60)
OTP_SEND_PER_ACCOUNT = Limit("otp-send:account", 5, 15 * 60)
OTP_SEND_PER_PHONE = Limit("otp-send:phone", 5, 60 * 60)
OTP_SEND_PER_IP = Limit("otp-send:ip", 20, 15 * 60)
OTP_VERIFY_PER_ACCOUNT = Limit("otp-verify:account", 10, 15 * 60)
OTP_VERIFY_PER_IP = Limit("otp-verify:ip", 50, 15 * 60)
REGISTRATION_PER_IP = Limit("registration:ip", 10, 60 * 60)
RECOVERY_PER_IDENTIFIER = Limit("recovery:identifier", 3, 60 * 60)
PASSKEY_PER_IP = Limit("passkey:ip", 30, 15 * 60)
# "More time" on a sign-in in progress (WCAG 2.2.1 asks for at least 10); the window
# outlasts the longest session, so this is a cap per sign-in.
SIGN_IN_EXTENSIONS = Limit("sign-in-extend", 20, 12 * 3600)
# Every SMS a tenant sends, whoever asks: a ceiling on what a fleet of addresses can cost it.
# The number is the tenant's ``[sms] budget_per_hour``; this is its default.
SMS_PER_TENANT = Limit("sms:tenant", 500, 60 * 60)
# Requests that send an email to an address the requester need not own: past these, the page
# says the same and nothing more is sent.
ACTIVATION_RESEND_PER_IP = Limit("activation-resend:ip", 5, 60 * 60)
RECOVERY_PER_IP = Limit("recovery:ip", 10, 60 * 60)
IDENTIFIER_REMINDER_PER_IP = Limit("identifier-reminder:ip", 10, 60 * 60)

ALL_LIMITS = (
    LOGIN_PER_IDENTIFIER, LOGIN_PER_IP, OTP_SEND_PER_ACCOUNT, OTP_SEND_PER_PHONE, OTP_SEND_PER_IP,
    OTP_VERIFY_PER_ACCOUNT, OTP_VERIFY_PER_IP, REGISTRATION_PER_IP, RECOVERY_PER_IDENTIFIER,
    PASSKEY_PER_IP, SIGN_IN_EXTENSIONS, SMS_PER_TENANT, ACTIVATION_RESEND_PER_IP, RECOVERY_PER_IP,
    IDENTIFIER_REMINDER_PER_IP,
)


class RateLimiter:
    def __init__(self, store: Store, limit: Limit):
        self.store = store
        self.limit = limit

    def _key(self, subject: str) -> str:
        # Hashed: identifiers and phone numbers are personal data and must not sit in Redis keys.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"rl:{self.limit.name}:{digest}"

    def test(self, subject: str) -> None:
        """Raise TooManyAttempts if the limit is already reached."""
        key = self._key(subject)
        raw = self.store.get(key)
        if raw is not None and int(raw) >= self.limit.limit:
            raise TooManyAttempts(self.limit.name, max(1, self.store.ttl(key)))

    def hit(self, subject: str) -> int:
        """Count one event; returns how many so far in the window."""
        return self.store.incr(self._key(subject), self.limit.window)

    def allow(self, subject: str) -> bool:
        """Count one event if the limit is not reached yet; False (and nothing counted) if it is."""
        try:
            self.test(subject)
        except TooManyAttempts:
            return False
        self.hit(subject)
        return True

    def clear(self, subject: str) -> None:
        self.store.delete(self._key(subject))

    def remaining(self, subject: str) -> int:
        raw = self.store.get(self._key(subject))
        return max(0, self.limit.limit - int(raw or 0))

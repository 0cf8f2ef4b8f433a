"""Named rate limits, kept in the store: count before the check, refuse past the limit,
clear on success.

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
    """``limit`` events per ``window`` seconds for one key.

    With a ``backoff``, reaching the limit slows events down instead of stopping them for
    the rest of the window: the limit-th event is followed by a wait of ``backoff`` seconds,
    each later one by twice the previous wait, up to ``backoff_max``.
    """

    name: str
    limit: int
    window: int
    backoff: int = 0
    backoff_max: int = 0

    def delay(self, beyond: int) -> int:
        """The wait after the ``beyond``-th event from the limit on (1: the limit-th)."""
        return min(self.backoff_max, self.backoff * 2 ** min(beyond - 1, 32))


# The documented numbers (README, "Rate limits").
# Past 5 wrong passwords, sign-in slows down (30 s, 1 min, 2 min … 15 min between two
# checks) rather than stopping: the count is forgotten a day after it starts.
LOGIN_PER_IDENTIFIER = Limit("login:identifier", 5, 24 * 3600, backoff=30, backoff_max=15 * 60)
LOGIN_PER_IP = Limit("login:ip", 30, 15 * 60)
# A browser that already completed a sign-in to the account is not slowed down by the
# identifier's count (others' failures); its own wrong passwords have this budget instead,
# so a copied cookie buys at most this many guesses a day.
LOGIN_KNOWN_BROWSER = Limit("login:known-browser", 5, 24 * 3600)
# The password given again on the account pages, per account; reaching it ends the session.
REAUTH_PER_ACCOUNT = Limit("reauth:account", 5, 15 * 60)
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
# Identity checks that failed, per key typed (member number, NIR), whichever addresses they
# come from: past them, the key answers as a miss for the rest of the day, even when right.
MATCH_PER_MEMBER_NUMBER = Limit("match:member-number", 5, 24 * 3600)
MATCH_PER_NIR = Limit("match:nir", 5, 24 * 3600)
# Birth dates typed on one activation link (Miel); the link then opens nothing. The window
# outlasts any link's life, so this is a cap per link.
# Codes received by post, typed back, per address (each code also has its own 5 tries).
LETTER_CODE_PER_IP = Limit("letter-code:ip", 10, 60 * 60)
ACTIVATION_BIRTH_DATE_TRIES = Limit("activation:birth-date", 5, 31 * 24 * 3600)

ALL_LIMITS = (
    LOGIN_KNOWN_BROWSER, REAUTH_PER_ACCOUNT,
    LOGIN_PER_IDENTIFIER, LOGIN_PER_IP, OTP_SEND_PER_ACCOUNT, OTP_SEND_PER_PHONE, OTP_SEND_PER_IP,
    OTP_VERIFY_PER_ACCOUNT, OTP_VERIFY_PER_IP, REGISTRATION_PER_IP, RECOVERY_PER_IDENTIFIER,
    PASSKEY_PER_IP, SIGN_IN_EXTENSIONS, SMS_PER_TENANT, ACTIVATION_RESEND_PER_IP, RECOVERY_PER_IP,
    IDENTIFIER_REMINDER_PER_IP, MATCH_PER_MEMBER_NUMBER, MATCH_PER_NIR, LETTER_CODE_PER_IP,
    ACTIVATION_BIRTH_DATE_TRIES,
)


class RateLimiter:
    """Counts events per subject in the store; ``consume`` counts one before the work it guards.

    Counting first, with one atomic increment, is what makes a limit hold under parallel
    requests on any number of nodes: a check-then-count leaves a gap in which every request
    already past the check runs the guarded work.
    """

    def __init__(self, store: Store, limit: Limit):
        self.store = store
        self.limit = limit

    def _key(self, subject: str) -> str:
        # Hashed: identifiers and phone numbers are personal data and must not sit in Redis keys.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"rl:{self.limit.name}:{digest}"

    def consume(self, subject: str) -> int:
        """Count one event before the work it guards; how many so far in the window.

        Raises ``TooManyAttempts`` when it is over the limit, the event then not counted.
        With a backoff, the events from the limit on go one at a time: each closes the way
        for its delay, and the event that finds it closed is refused.
        """
        return consume_each((self, subject))[0]

    def _admit(self, key: str, count: int) -> None:
        """``consume``'s decision on the event just counted (``count`` under ``key``)."""
        if not self.limit.backoff:
            if count > self.limit.limit:
                self.store.decr(key)
                raise TooManyAttempts(self.limit.name, max(1, self.store.ttl(key)))
            return
        if count < self.limit.limit:
            return
        gate = f"{key}:wait"
        # Claimed for the longest delay, then set to this event's: no one passes in between.
        if not self.store.set(gate, "1", self.limit.backoff_max, only_if_absent=True):
            self.store.decr(key)
            raise TooManyAttempts(self.limit.name, max(1, self.store.ttl(gate)))
        beyond = self.store.incr(f"{key}:beyond", self.limit.window)
        self.store.set(gate, "1", self.limit.delay(beyond))

    def refund(self, subject: str) -> None:
        """Give back an event counted by ``consume`` that the limit is not about (a right
        password, for a limit on wrong ones)."""
        self.store.decr(self._key(subject))

    def test(self, subject: str) -> None:
        """Raise TooManyAttempts if the next event would be refused (nothing counted)."""
        key = self._key(subject)
        raw = self.store.get(key)
        if raw is None or int(raw) < self.limit.limit:
            return
        if not self.limit.backoff:
            raise TooManyAttempts(self.limit.name, max(1, self.store.ttl(key)))
        wait = self.store.ttl(f"{key}:wait")
        if wait:
            raise TooManyAttempts(self.limit.name, wait)

    def hit(self, subject: str) -> int:
        """Count one event after the fact; returns how many so far in the window. From the
        limit on, a backoff makes the next event wait (``consume``)."""
        key = self._key(subject)
        count = self.store.incr(key, self.limit.window)
        if self.limit.backoff and count >= self.limit.limit:
            beyond = self.store.incr(f"{key}:beyond", self.limit.window)
            self.store.set(f"{key}:wait", "1", self.limit.delay(beyond))
        return count

    def allow(self, subject: str) -> bool:
        """Count one event if the limit allows it; False (and nothing counted) if not."""
        try:
            self.consume(subject)
        except TooManyAttempts:
            return False
        return True

    def clear(self, subject: str) -> None:
        clear(self.store, (self, subject))

    def keys(self, subject: str) -> tuple[str, str, str]:
        """The store's keys for ``subject``: its count, its backoff's gate and the backoff's count."""
        key = self._key(subject)
        return key, f"{key}:wait", f"{key}:beyond"

    def remaining(self, subject: str) -> int:
        raw = self.store.get(self._key(subject))
        return max(0, self.limit.limit - int(raw or 0))


def consume_each(*wanted: tuple[RateLimiter, str]) -> list[int]:
    """``RateLimiter.consume`` for each limiter and its subject, counted in one call to the store
    (the limiters share it); the counts so far, in their order.

    Raises ``TooManyAttempts`` for the first limit that refuses, in their order; what the
    others counted is then given back (``RateLimiter.refund``), and the refusing limit's own
    count is what ``consume`` leaves of a refusal.
    """
    store = wanted[0][0].store
    keys = [limiter._key(subject) for limiter, subject in wanted]
    counts = store.incr_each([(key, limiter.limit.window)
                              for key, (limiter, _subject) in zip(keys, wanted, strict=True)])
    for index, ((limiter, _subject), key, count) in enumerate(zip(wanted, keys, counts, strict=True)):
        try:
            limiter._admit(key, count)
        except TooManyAttempts:
            for other, subject in wanted[:index] + wanted[index + 1:]:
                other.refund(subject)
            raise
    return counts


def clear(store: Store, *counted: tuple[RateLimiter, str],
          refund: tuple[RateLimiter, str] | None = None) -> None:
    """Forget what each limiter counted for its subject, and give back one event to ``refund``'s
    limiter for its subject (``RateLimiter.refund``), in one call to the store."""
    keys = [key for limiter, subject in counted for key in limiter.keys(subject)]
    if refund is None:
        store.delete(*keys)
    else:
        limiter, subject = refund
        store.decr(limiter.keys(subject)[0], delete=keys)

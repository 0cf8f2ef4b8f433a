"""Second factor: one-time code challenges (in the store) and trusted devices (in the database)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.orm import Session

from idp import events
from idp.db import rowcount, utcnow, write
from idp.mfa import otp
from idp.mfa.models import TrustedDevice
from idp.records import record
from idp.store import Store
from idp.tenancy import Tenant
from idp.tokens import InvalidToken, TokenService

CHANNELS = ("email", "sms")


class OtpError(Exception):
    """Base of the one-time code failures."""


class OtpExpired(OtpError):
    """No live challenge: expired, already used, or replaced by a newer code."""


class OtpInvalid(OtpError):
    def __init__(self, remaining: int):
        super().__init__(f"wrong code, {remaining} tries left")
        self.remaining = remaining


class OtpReplaced(OtpInvalid):
    """A wrong code that was the one a newer code replaced (another channel, or sent again):
    a try spent as for any wrong code; ``channel`` is where the newer code went."""

    def __init__(self, remaining: int, channel: str):
        super().__init__(remaining)
        self.channel = channel


class OtpLocked(OtpError):
    """Too many wrong codes for this challenge: a new code is needed."""


class ResendTooSoon(OtpError):
    def __init__(self, retry_after: int):
        super().__init__(f"resend in {retry_after}s")
        self.retry_after = retry_after


@dataclass
class Challenge:
    id: str
    tenant: str
    account_id: str
    channel: str
    digest: str
    issued_at: float
    expires_at: float

    @property
    def valid_until(self) -> datetime:
        """The code's end in naive UTC, as messages store times (a late message is not sent)."""
        return datetime.fromtimestamp(self.expires_at, UTC).replace(tzinfo=None)


class OtpService:
    """Issues and checks codes. A challenge lives in the store for the code's lifetime."""

    def __init__(self, store: Store, secret: bytes, clock: Callable[[], float] | None = None):
        self.store = store
        self.secret = secret
        # Looked up at call time, so a test can freeze time.time.
        self.clock = clock or (lambda: time.time())

    def _key(self, challenge_id: str) -> str:
        return f"otp:{challenge_id}"

    def issue(self, tenant: Tenant, account_id: str, channel: str,
              previous: Challenge | None = None, *, cooldown: bool = True) -> tuple[Challenge, str]:
        """A new code for this sign-in attempt; it replaces the previous one. Within the cooldown
        of ``previous`` on the same channel, ``ResendTooSoon``; without ``cooldown`` (the code
        goes to another address than the previous one, a typing mistake corrected), none."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        now = self.clock()
        if cooldown and previous is not None and previous.channel == channel:
            wait = int(previous.issued_at + tenant.mfa.otp_resend_cooldown_seconds - now + 0.999)
            if wait > 0:
                raise ResendTooSoon(wait)
        if previous is not None:
            self.store.delete(self._key(previous.id))
        challenge_id = secrets.token_urlsafe(24)
        code = otp.generate_code()
        challenge = Challenge(
            id=challenge_id, tenant=tenant.slug, account_id=account_id, channel=channel,
            digest=otp.code_digest(self.secret, challenge_id, code), issued_at=now,
            expires_at=now + tenant.mfa.otp_ttl_seconds,
        )
        self.store.set(self._key(challenge_id), json.dumps(record(challenge)),
                       tenant.mfa.otp_ttl_seconds)
        return challenge, code

    def verify(self, tenant: Tenant, challenge: Challenge, raw_code: str,
               replaced: Challenge | None = None) -> None:
        """Accept the code once; raise OtpExpired, OtpLocked or OtpInvalid otherwise, OtpReplaced
        when the wrong code is the one of ``replaced``, the challenge this one replaced (it only
        tells; that code never signs in)."""
        if self.clock() >= challenge.expires_at:
            raise OtpExpired()
        if self.store.get(self._key(challenge.id)) is None:
            # Gone after its last allowed try: the member is told so, not that it expired.
            spent = self.store.get(f"{self._key(challenge.id)}:tries")
            if spent is not None and int(spent) >= tenant.mfa.otp_max_attempts:
                raise OtpLocked()
            raise OtpExpired()
        tries = self.store.incr(f"{self._key(challenge.id)}:tries", tenant.mfa.otp_ttl_seconds)
        maximum = tenant.mfa.otp_max_attempts
        if tries > maximum:
            self.store.delete(self._key(challenge.id))
            raise OtpLocked()
        code = otp.normalize_code(raw_code)
        if code is None or not otp.codes_match(self.secret, challenge.id, code, challenge.digest):
            if tries >= maximum:
                self.store.delete(self._key(challenge.id))
                raise OtpLocked()
            if code is not None and replaced is not None and otp.codes_match(
                    self.secret, replaced.id, code, replaced.digest):
                raise OtpReplaced(maximum - tries, challenge.channel)
            raise OtpInvalid(maximum - tries)
        # Single use: of two concurrent correct submissions only one takes the challenge.
        if self.store.take(self._key(challenge.id)) is None:
            raise OtpExpired()
        self.store.delete(f"{self._key(challenge.id)}:tries")


def _still_trusted(devices: Any, now: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The conditions of a device still trusted at ``now``: not revoked, not expired.
    ``devices``: the mapped class, or its table's columns."""
    return devices.revoked_at.is_(None), devices.expires_at > now


_DEVICES = cast("Table", TrustedDevice.__table__)
# A device still trusted, marked used: one statement on the table (no object loaded, none to flush).
_MARK_USED = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("p_device"), _DEVICES.c.account_id == bindparam("p_account"),
           _DEVICES.c.tenant == bindparam("p_tenant"), *_still_trusted(_DEVICES.c, bindparam("p_now")))
    .values(last_used_at=bindparam("p_now"))
)


class TrustedDevices:
    """"Se souvenir de moi": a signed cookie naming a server-side record, revocable at any time."""

    def __init__(self, db: Session, tokens: TokenService | None = None):
        # ``tokens`` signs and reads the cookie; listing and revoking do not need it.
        self.db = db
        self.tokens = tokens

    def remember(self, tenant: Tenant, account_id: str, label: str) -> tuple[TrustedDevice, str]:
        now = utcnow()
        device = TrustedDevice(
            tenant=tenant.slug, account_id=account_id, label=label[:120] or "?",
            created_at=now, last_used_at=now,
            expires_at=now + timedelta(days=tenant.mfa.trusted_device_days),
        )
        self.db.add(device)
        self.db.flush()
        events.record_event(self.db, events.DEVICE_TRUSTED, tenant=tenant.slug, account_id=account_id)
        return device, self._signer().dumps({"d": device.id, "a": account_id})

    def named(self, tenant: Tenant, account_id: str, cookie: str | None) -> str | None:
        """The device a cookie names, if it is this account's cookie (signed, not too old);
        whether the device is still trusted is the database's to say."""
        if not cookie:
            return None
        try:
            payload = self._signer().loads(cookie, max_age=tenant.mfa.trusted_device_days * 86400)
        except InvalidToken:
            return None
        if not isinstance(payload, dict) or payload.get("a") != account_id:
            return None
        return str(payload.get("d"))

    def recognise(self, tenant: Tenant, account_id: str, cookie: str | None) -> bool:
        """Whether this cookie names a device of this account still trusted; it is then marked
        used, in the same statement."""
        device_id = self.named(tenant, account_id, cookie)
        if device_id is None:
            return False
        return bool(write(self.db, _MARK_USED, {
            "p_device": device_id, "p_account": account_id, "p_tenant": tenant.slug,
            "p_now": utcnow()}))

    def list(self, account_id: str) -> list[TrustedDevice]:
        return list(self.db.scalars(
            select(TrustedDevice)
            .where(TrustedDevice.account_id == account_id, *_still_trusted(TrustedDevice, utcnow()))
            .order_by(TrustedDevice.last_used_at.desc())
        ).all())

    def get(self, account_id: str, device_id: str) -> TrustedDevice | None:
        """One of the account's devices, while it is still trusted."""
        return self.db.scalar(select(TrustedDevice).where(
            TrustedDevice.id == device_id, TrustedDevice.account_id == account_id,
            *_still_trusted(TrustedDevice, utcnow())))

    def revoke(self, account_id: str, device_id: str) -> bool:
        done = rowcount(self.db.execute(
            update(TrustedDevice)
            .where(TrustedDevice.id == device_id, TrustedDevice.account_id == account_id,
                   TrustedDevice.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ))
        if done:
            events.record_event(self.db, events.DEVICE_REVOKED, account_id=account_id)
        return bool(done)

    def revoke_all(self, account_id: str) -> int:
        """Forget every trusted browser (password change or reset, or the member's choice)."""
        done = rowcount(self.db.execute(
            update(TrustedDevice)
            .where(TrustedDevice.account_id == account_id, TrustedDevice.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ))
        if done:
            events.record_event(self.db, events.DEVICE_REVOKED, account_id=account_id, count=done)
        return done

    def _signer(self) -> TokenService:
        if self.tokens is None:
            raise RuntimeError("TrustedDevices needs a TokenService to sign or read the cookie")
        return self.tokens

"""The sign-in's domain work, without Flask: its collaborators come in through the constructor.

``SignIn`` owns the rate limits of a sign-in (password per identifier and per address,
code checks per account and per address); ``CodeSender`` owns those of sending a code
(per account, per address, per phone number, and the tenant's SMS budget and countries),
for every code the provider sends.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import events, ratelimit
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account
from idp.accounts.services import Authenticator, LegacyCosts, SignInContext
from idp.channels.services import Messages
from idp.db import utcnow
from idp.mfa.services import Challenge, OtpError, OtpService, ResendTooSoon, TrustedDevices
from idp.ratelimit import Limit, RateLimiter
from idp.store import Store
from idp.tenancy import Tenant


@dataclass(frozen=True)
class SentCode:
    """A code on its way: its challenge, the message carrying it, and whether it left at once."""

    challenge: Challenge
    message_id: int
    delivered: bool


class SmsCountryRefused(Exception):
    """The tenant sends no SMS to this number's country (``[sms] countries``)."""


class CodeSender:
    """Every one-time code goes through here, with the same limits whatever it proves.

    ``send`` commits (the code's message leaves at commit, and the page says whether it
    did). It raises ``SmsCountryRefused`` for a mobile outside the tenant's countries,
    ``TooManyAttempts`` when a send limit (or the tenant's SMS budget) is reached and
    ``ResendTooSoon`` within the cooldown of the code it replaces; nothing is sent or
    counted then.
    """

    def __init__(self, session: Session, store: Store, otp: OtpService, messages: Messages):
        self.session = session
        self.store = store
        self.otp = otp
        self.messages = messages

    def send(self, tenant: Tenant, *, challenge_subject: str, limit_subject: str, channel: str,
             recipient: str, template: str, ip: str, previous: Challenge | None = None,
             new_recipient: bool = False, replaces: int | None = None,
             audit: Mapping[str, Any] | None = None) -> SentCode:
        """Send a code for ``challenge_subject`` (what it proves) to ``recipient``.

        ``limit_subject`` is who the per-account limit counts (an account, a registration);
        ``previous`` the code this one replaces (its cooldown applies, unless ``new_recipient``:
        it went to another address, which the member has corrected), ``replaces`` its
        message, withdrawn if still held back. ``audit``: the audit event of the sending
        (``events.record_event``'s arguments), committed with the code's message.
        """
        limits: list[tuple[Limit, str]] = [(ratelimit.OTP_SEND_PER_ACCOUNT, limit_subject),
                                           (ratelimit.OTP_SEND_PER_IP, ip)]
        if channel == "sms":
            if not tenant.sms.allows(recipient):
                raise SmsCountryRefused()
            budget = replace(ratelimit.SMS_PER_TENANT, limit=tenant.sms.budget_per_hour)
            limits += [(ratelimit.OTP_SEND_PER_PHONE, recipient), (budget, tenant.slug)]
        # Counted before the code is made, so that parallel requests cannot overrun a limit;
        # what a refusal counted is given back (nothing was sent).
        counted = [(RateLimiter(self.store, limit), subject) for limit, subject in limits]
        ratelimit.consume_each(*counted)
        try:
            challenge, code = self.otp.issue(tenant, challenge_subject, channel, previous,
                                             cooldown=not new_recipient)
        except ResendTooSoon:
            for limiter, subject in counted:
                limiter.refund(subject)
            raise
        message = self.messages.queue_code(tenant, channel, template, recipient, code=code,
                                           valid_until=challenge.valid_until, replaces=replaces)
        if audit is not None:
            events.record_event(self.session, **audit)
        self.session.commit()
        return SentCode(challenge, message.id, self.messages.delivered(message))

    def check(self, tenant: Tenant, challenge: Challenge, code: str,
              replaced: Challenge | None = None) -> None:
        """Accept the code once; OtpExpired, OtpLocked or OtpInvalid otherwise (OtpReplaced for
        the code of ``replaced``, the challenge this one replaced)."""
        self.otp.verify(tenant, challenge, code, replaced)


class SignIn:
    """The steps of a sign-in: the password, a trusted browser or a code, a new-browser notice."""

    def __init__(self, session: Session, store: Store, hasher: PasswordHasher,
                 legacy_costs: LegacyCosts, trusted_devices: TrustedDevices, codes: CodeSender,
                 messages: Messages):
        self.session = session
        self.store = store
        self.hasher = hasher
        self.legacy_costs = legacy_costs
        self.trusted_devices = trusted_devices
        self.codes = codes
        self.messages = messages

    def check_password(self, tenant: Tenant, identifier: str, password: str,
                       context: SignInContext, *, known_accounts: Collection[str] = ()
                       ) -> Account | None:
        """The account, or None for a wrong identifier or password (one answer for both).

        Every check is counted before it runs (SPEC §5): per address (a right password is
        given back) and per identifier typed, where the fifth wrong password and each one
        after it make the next check wait (``LOGIN_PER_IDENTIFIER``'s backoff).
        ``TooManyAttempts`` when a check must wait; the wrong password that starts a wait
        is recorded and committed before that answer. A right password's audit goes with
        the rest of the sign-in, in the request's transaction.

        ``known_accounts``: the accounts that completed a sign-in in this browser. For those,
        others' failures on the identifier do not apply; the browser's own wrong passwords
        count against ``LOGIN_KNOWN_BROWSER`` instead, and past it the browser is treated
        like any other.
        """
        per_ip = RateLimiter(self.store, ratelimit.LOGIN_PER_IP)
        per_identifier = RateLimiter(self.store, ratelimit.LOGIN_PER_IDENTIFIER)
        # Keyed on what was typed, so unknown identifiers count exactly like real ones.
        subject = f"{tenant.slug}:{identifier.strip().lower()}"
        ip = context.ip or "?"
        authenticator = Authenticator(self.session, self.hasher, self.legacy_costs)
        account = authenticator.find(tenant, identifier)
        limiter, counted = self._count_check(per_ip, ip, account, known_accounts, subject)
        signed_in = authenticator.verify(tenant, identifier, account, password, context)
        if signed_in is None:
            backoff = ratelimit.LOGIN_PER_IDENTIFIER
            if limiter.limit is backoff and counted >= backoff.limit:
                events.record_event(self.session, events.LOGIN_LOCKED, tenant=tenant.slug, ip=ip)
                self.session.commit()
                per_identifier.test(subject)
            return None
        # The password is proven: its failures are forgotten, and the account pages may ask it
        # again with a fresh budget; the address's check is given back.
        ratelimit.clear(self.store, (per_identifier, subject),
                        (RateLimiter(self.store, ratelimit.LOGIN_KNOWN_BROWSER), signed_in.id),
                        (RateLimiter(self.store, ratelimit.REAUTH_PER_ACCOUNT), signed_in.id),
                        refund=(per_ip, ip))
        return signed_in

    def _count_check(self, per_ip: RateLimiter, ip: str, account: Account | None,
                     known_accounts: Collection[str], subject: str) -> tuple[RateLimiter, int]:
        """Count the check against the address's limit and the password's: the limit this
        browser's wrong passwords count against, and its count with this check; both counted
        in one call to the store (``ratelimit.consume_each``)."""
        if account is not None and account.id in known_accounts:
            known = RateLimiter(self.store, ratelimit.LOGIN_KNOWN_BROWSER)
            try:
                return known, ratelimit.consume_each((per_ip, ip), (known, account.id))[1]
            except ratelimit.TooManyAttempts as refused:
                if refused.limit != known.limit.name:
                    raise
                # Its own budget spent (nothing counted): this browser is treated like any other.
        per_identifier = RateLimiter(self.store, ratelimit.LOGIN_PER_IDENTIFIER)
        return per_identifier, ratelimit.consume_each((per_ip, ip), (per_identifier, subject))[1]

    def refuse_legacy_identifier(self, tenant: Tenant, *, ip: str | None) -> None:
        """After the migration's cut-off a member number no longer signs in (SPEC §7): audited
        for the migration's follow-up, whatever the number and password."""
        events.record_event(self.session, events.LEGACY_LOGIN_REFUSED, tenant=tenant.slug, ip=ip)

    def trusted_browser(self, tenant: Tenant, account: Account, cookie: str | None) -> bool:
        """Whether this browser's trusted-device cookie stands for ``account`` (it is then used)."""
        return self.trusted_devices.recognise(tenant, account.id, cookie)

    def send_code(self, tenant: Tenant, account: Account, channel: str, *, ip: str,
                  previous: Challenge | None, replaces: int | None) -> SentCode:
        """A sign-in code to the account's email or mobile (``CodeSender.send``; commits)."""
        recipient = account.email if channel == "email" else account.phone_number
        if not recipient:
            raise ValueError(f"no {channel} on the account")
        return self.codes.send(tenant, challenge_subject=account.id, limit_subject=account.id,
                               channel=channel, recipient=recipient, template="otp_code", ip=ip,
                               previous=previous, replaces=replaces,
                               audit={"tag": events.OTP_SENT, "tenant": tenant.slug,
                                      "account_id": account.id, "channel": channel})

    def check_code(self, tenant: Tenant, account: Account, challenge: Challenge, code: str, *,
                   ip: str, replaced: Challenge | None = None) -> None:
        """The sign-in code, bounded per account and per address across codes; ``replaced``, the
        challenge of the code this one replaced, if any (``CodeSender.check``).

        Raises ``TooManyAttempts`` (nothing checked) or an ``OtpError`` (counted and audited).
        Each check is counted before it runs; a right code is given back to the address.
        """
        per_account = RateLimiter(self.store, ratelimit.OTP_VERIFY_PER_ACCOUNT)
        per_ip = RateLimiter(self.store, ratelimit.OTP_VERIFY_PER_IP)
        ratelimit.consume_each((per_account, account.id), (per_ip, ip))
        try:
            self.codes.check(tenant, challenge, code, replaced)
        except OtpError as exc:
            events.record_event(self.session, events.OTP_FAILURE, tenant=tenant.slug,
                                account_id=account.id, channel=challenge.channel,
                                reason=type(exc).__name__)
            raise
        ratelimit.clear(self.store, (per_account, account.id), refund=(per_ip, ip))

    def _signed_in_before(self, account: Account) -> bool:
        """Whether a password was proven before this sign-in's (recorded at its password step)."""
        proven = self.session.scalars(select(events.AuditEvent.id).where(
            events.AuditEvent.account_id == account.id,
            events.AuditEvent.tag == events.LOGIN_SUCCESS).limit(2)).all()
        return len(proven) > 1

    def remember_browser(self, tenant: Tenant, account: Account, label: str) -> str:
        """Trust this browser for the tenant's days; the cookie value that proves it."""
        _device, token = self.trusted_devices.remember(tenant, account.id, label)
        return token

    def notify_new_browser(self, tenant: Tenant, account: Account, label: str) -> None:
        """Queue the "new sign-in from …" email (SPEC §5); it leaves when the request commits.

        Not at the account's very first sign-in: every browser is new then, and the member
        has just activated the account themselves.
        """
        if not account.email or not self._signed_in_before(account):
            return
        self.messages.queue(
            tenant, "email", "new_device", account.email, device=label,
            when=utcnow(), reset_url=f"{tenant.issuer}/forgot-password",
        )
        events.record_event(self.session, events.NEW_DEVICE_NOTIFIED, tenant=tenant.slug,
                            account_id=account.id)

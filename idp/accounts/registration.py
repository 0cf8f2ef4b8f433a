"""Registration against the member registry, manual review, and activation (SPEC §2, §3).

Nothing is half-created: an account exists (status ``pending``) only in the
same transaction as the activation email that lets its member finish. Every
answer that could tell whether someone is registered is the same on the page;
what differs goes by email to the address concerned.

The service queues messages in the caller's transaction and returns them; the
caller commits; they leave at commit (``idp.channels.dispatch``). The language the
member registers in is kept (on the account, or on the request under review)
for the messages they get when they are not at the screen: support's decision.

Single use holds under concurrent requests (SPEC §3.3), and the database decides it:
registrations of one member wait for each other on the member's row (``FOR UPDATE``),
so each sees what the one before it did; an activation link is spent by a conditional
``UPDATE`` whose row count says which of two concurrent uses won; a review decision is a
state transition ``pending`` → ``approved``/``rejected`` taken the same way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp import events
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.channels.services import Messages, Reader
from idp.db import rowcount, utcnow
from idp.identifiers import normalize_email
from idp.registry.matching import MatchResult, contact_matches
from idp.registry.models import Member
from idp.tenancy import Tenant
from idp.tokens import ACTIVATION, InvalidToken, TokenService

# What the member is told, whatever happened behind it (the page never says more).
ACTIVATION_SENT = "activation_sent"   # also for "already registered": the email says which
IN_REVIEW = "in_review"
NO_MATCH = "no_match"
BENEFICIARY = "beneficiary"
TERMINATED = "terminated"

# A registration repeated within this time sends no email again: what the first one sent is
# on its way. Twenty submissions of one form (a double click, a script) make one email;
# a member who starts again later gets a new one.
REPEAT_WINDOW = timedelta(minutes=5)


class ActivationLinkInvalid(Exception):
    """Tampered, expired, or replaced by a newer link."""


class ActivationLinkUsed(ActivationLinkInvalid):
    """The link did its work already: the account it was for is active."""


class ReviewError(Exception):
    """A review decision that cannot be taken (unknown request, already decided)."""


@dataclass
class Applicant:
    first_name: str
    last_name: str
    birth_date: date
    email: str
    mobile: str | None
    terms_version: str | None
    ip: str | None = None
    # True when the mobile was proven by an SMS code during registration (Miel).
    mobile_verified: bool = False


@dataclass
class Outcome:
    status: str
    messages: list[Message] = field(default_factory=list)


class Registrations:
    def __init__(self, db: Session, tenant: Tenant, messages: Messages, secret_key: str):
        self.db = db
        self.tenant = tenant
        self.messages = messages
        self.tokens = TokenService(secret_key, ACTIVATION)

    # -- registration -------------------------------------------------------------------------

    def register(self, applicant: Applicant, match: MatchResult) -> Outcome:
        """Decide on a registration whose identity was matched against the registry.

        Registrations of one member are taken one after the other (a lock on the member's
        row until the caller commits); an email already queued for the same purpose to the
        same address within ``REPEAT_WINDOW`` is not queued again.
        """
        if match.outcome == "miss" or match.member is None:
            events.record_event(self.db, events.REGISTRATION_MISS, tenant=self.tenant.slug,
                                ip=applicant.ip)
            return Outcome(NO_MATCH)
        if match.outcome in (BENEFICIARY, TERMINATED):
            return Outcome(match.outcome)
        member = self._locked(match.member)
        email = normalize_email(applicant.email)
        existing = self._account_of(member)
        if existing is not None and existing.is_active:
            # Registering again: the member is told by email, the page says nothing more.
            address = existing.email or email
            messages = [] if self._queued_lately(address, "already_registered") else [
                self._queue(address, "already_registered", login_url=f"{self.tenant.issuer}/login")]
            return Outcome(ACTIVATION_SENT, messages)
        if match.outcome == "near_miss" or not contact_matches(member, email, applicant.mobile):
            reason = "near_miss" if match.outcome == "near_miss" else "contact_mismatch"
            return self._to_review(member, applicant, email, reason, match.differences)
        email_owner = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.email == email))
        if email_owner is not None and email_owner.member_id != member.id:
            return self._email_in_use(email, email_owner)
        try:
            # A savepoint: another member's registration may take this address at the same
            # moment (the unique address per tenant decides), and this one then ends cleanly.
            with self.db.begin_nested():
                account = existing or self._new_account(member, applicant, email)
                already_sent = (account.activation_nonce is not None and account.email == email
                                and self._queued_lately(email, "activation"))
                account.locale = self.messages.locale_for(self.tenant)
                account.email = email
                account.phone_number = applicant.mobile
                account.phone_number_verified = applicant.mobile_verified
                if applicant.terms_version:
                    account.terms_version, account.terms_accepted_at = applicant.terms_version, utcnow()
                self.db.flush()
        except IntegrityError:
            email_owner = self.db.scalar(select(Account).where(
                Account.tenant == self.tenant.slug, Account.email == email))
            return self._email_in_use(email, email_owner) if email_owner else Outcome(ACTIVATION_SENT)
        if already_sent:
            # The link sent moments ago still works (its nonce is kept): nothing more to send.
            return Outcome(ACTIVATION_SENT)
        outcome = Outcome(ACTIVATION_SENT, self._welcome_emails(account))
        outcome.messages += self._notify_address_on_file(member, email, "registration_notice")
        events.record_event(self.db, events.REGISTRATION_ACCEPTED, tenant=self.tenant.slug,
                            account_id=account.id, ip=applicant.ip)
        return outcome

    def _locked(self, member: Member) -> Member:
        """The member's row, locked until the caller commits: one registration at a time."""
        return self.db.get_one(Member, member.id, with_for_update=True, populate_existing=True)

    def _email_in_use(self, email: str, owner: Account) -> Outcome:
        """The address belongs to someone else's account: tell that address, not the page,
        in that account's language. Its row is locked first, so that registrations racing
        for one address tell it once."""
        self.db.refresh(owner, with_for_update=True)
        if self._queued_lately(email, "email_in_use"):
            return Outcome(ACTIVATION_SENT)
        return Outcome(ACTIVATION_SENT, [self._queue(email, "email_in_use", reader=owner,
                                                     login_url=f"{self.tenant.issuer}/login")])

    def _account_of(self, member: Member) -> Account | None:
        return self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.member_number == member.member_number))

    def _new_account(self, member: Member, applicant: Applicant, email: str) -> Account:
        # Names and birth date come from the registry: it is the source of truth.
        account = Account(
            tenant=self.tenant.slug, member_id=member.id, member_number=member.member_number,
            email=email, given_name=member.first_name, family_name=member.last_name,
            birthdate=member.birth_date, role=member.role, status="pending",
            phone_number=applicant.mobile,
        )
        self.db.add(account)
        self.db.flush()
        return account

    def _to_review(self, member: Member, applicant: Applicant, email: str, reason: str,
                   differences: list[str]) -> Outcome:
        pending = self.db.scalar(select(RegistrationRequest).where(
            RegistrationRequest.member_id == member.id, RegistrationRequest.status == "pending"))
        submitted = {
            "first_name": applicant.first_name, "last_name": applicant.last_name,
            "birth_date": applicant.birth_date.isoformat(), "email": email,
            "mobile": applicant.mobile, "terms_version": applicant.terms_version,
        }
        if pending is None:
            pending = RegistrationRequest(tenant=self.tenant.slug, member_id=member.id)
            self.db.add(pending)
        # A new attempt replaces what the member typed before: reviewers see the latest.
        pending.reason, pending.submitted, pending.differences = reason, submitted, differences
        pending.locale = self.messages.locale_for(self.tenant)
        self.db.flush()
        events.record_event(self.db, events.REGISTRATION_REVIEW, tenant=self.tenant.slug,
                            ip=applicant.ip, request=pending.id, reason=reason)
        if self._queued_lately(email, "registration_received"):
            return Outcome(IN_REVIEW)
        messages = [self._queue(email, "registration_received")]
        messages += self._notify_address_on_file(member, email, "registration_notice")
        return Outcome(IN_REVIEW, messages)

    # -- review ---------------------------------------------------------------------------------

    def pending_requests(self) -> list[RegistrationRequest]:
        return list(self.db.scalars(select(RegistrationRequest).where(
            RegistrationRequest.tenant == self.tenant.slug, RegistrationRequest.status == "pending",
        ).order_by(RegistrationRequest.id)))

    def _decide(self, request_id: int, status: str, reason: str | None = None) -> RegistrationRequest:
        """Take the request from ``pending`` to ``status``, once: of concurrent decisions the
        one whose conditional UPDATE changed the row acts; the others get ReviewError."""
        request = self.db.get(RegistrationRequest, request_id)
        if request is None or request.tenant != self.tenant.slug:
            raise ReviewError(f"no registration request {request_id} in {self.tenant.slug}")
        decided = rowcount(self.db.execute(
            update(RegistrationRequest)
            .where(RegistrationRequest.id == request_id, RegistrationRequest.status == "pending")
            .values(status=status, decided_at=utcnow(), decision_reason=reason)
            .execution_options(synchronize_session=False)))
        # Either way the row as it now stands (this decision, or the one that came first).
        self.db.refresh(request)
        if decided != 1:
            raise ReviewError(f"request {request_id} was already {request.status}")
        return request

    def approve(self, request_id: int) -> list[Message]:
        """Support vouches for the member: the account is created and the activation sent."""
        request = self._decide(request_id, "approved")
        # get_one: the request's member_id is a cascading foreign key, so the member is there.
        member = self.db.get_one(Member, request.member_id)
        submitted = request.submitted
        applicant = Applicant(
            first_name=submitted["first_name"], last_name=submitted["last_name"],
            birth_date=date.fromisoformat(submitted["birth_date"]), email=submitted["email"],
            mobile=submitted.get("mobile"), terms_version=submitted.get("terms_version"),
        )
        account = self._account_of(member) or self._new_account(member, applicant, applicant.email)
        account.email, account.phone_number = applicant.email, applicant.mobile
        account.locale = request.locale
        if applicant.terms_version:
            account.terms_version, account.terms_accepted_at = applicant.terms_version, utcnow()
        events.record_event(self.db, events.REVIEW_APPROVED, tenant=self.tenant.slug,
                            account_id=account.id, request=request.id)
        return self._welcome_emails(account, reader=account)

    def reject(self, request_id: int, reason: str) -> list[Message]:
        request = self._decide(request_id, "rejected", reason)
        events.record_event(self.db, events.REVIEW_REJECTED, tenant=self.tenant.slug,
                            request=request.id)
        return [self._queue(request.submitted["email"], "registration_rejected", reader=request)]

    # -- activation -----------------------------------------------------------------------------

    def _welcome_emails(self, account: Account, reader: Reader | None = None) -> list[Message]:
        """The activation link; members who sign in with their number also get it (Miel).

        ``reader``: see ``Messages.locale_for`` (given when support decided).
        """
        messages = [self._activation_email(account, reader)]
        if not self.tenant.logs_in_with_email:
            messages.insert(0, self._queue(_address(account), "identifier", reader=reader,
                                           member_number=account.member_number,
                                           login_url=f"{self.tenant.issuer}/login"))
        return messages

    def _activation_email(self, account: Account, reader: Reader | None = None) -> Message:
        account.activation_nonce = secrets.token_urlsafe(24)
        token = self.tokens.dumps({"a": account.id, "n": account.activation_nonce})
        return self._queue(_address(account), "activation", reader=reader,
                           activation_url=f"{self.tenant.issuer}/activate/{token}",
                           hours=self.tenant.links.activation_ttl_hours)

    def account_for_link(self, token: str) -> Account:
        """The pending account a link activates; ActivationLinkUsed once it is active,
        ActivationLinkInvalid otherwise."""
        try:
            payload = self.tokens.loads(token, max_age=self.tenant.links.activation_ttl_hours * 3600)
        except InvalidToken:
            raise ActivationLinkInvalid() from None
        if not isinstance(payload, dict):
            raise ActivationLinkInvalid()
        account = self.db.get(Account, str(payload.get("a")))
        if account is None or account.tenant != self.tenant.slug:
            raise ActivationLinkInvalid()
        if account.is_active:
            raise ActivationLinkUsed()
        if (account.status != "pending" or not account.activation_nonce
                or payload.get("n") != account.activation_nonce):
            raise ActivationLinkInvalid()
        return account

    def activate(self, account: Account, password: str, hasher: PasswordHasher) -> list[Message]:
        """Set the first password; the link dies with it (its nonce is cleared).

        One conditional UPDATE spends the link: of concurrent uses, the one that changes
        the row wins; the others wait for it, find the nonce gone and get
        ActivationLinkUsed, having changed nothing.
        """
        password_hash = hasher.hash(password)
        now = utcnow()
        spent = rowcount(self.db.execute(
            update(Account)
            .where(Account.id == account.id, Account.status == "pending",
                   Account.activation_nonce.is_not(None),
                   Account.activation_nonce == account.activation_nonce)
            .values(password_hash=password_hash, password_changed_at=now, activation_nonce=None,
                    locale=self.messages.locale_for(self.tenant), status="active",
                    email_verified=True)
            .execution_options(synchronize_session=False)))
        self.db.refresh(account)
        if spent != 1:
            raise ActivationLinkUsed()
        events.record_event(self.db, events.ACCOUNT_ACTIVATED, tenant=self.tenant.slug,
                            account_id=account.id)
        member = self.db.get(Member, account.member_id) if account.member_id else None
        return self._notify_address_on_file(member, account.email, "activation_notice")

    def resend_activation(self, email: str) -> list[Message]:
        """A new link for a pending account with this address; nothing (and no sign) otherwise."""
        account = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.email == normalize_email(email),
            Account.status == "pending"))
        return [self._activation_email(account)] if account is not None else []

    # -- messages -------------------------------------------------------------------------------

    def _queue(self, recipient: str, template: str, *, reader: Reader | None = None,
               **context) -> Message:
        return self.messages.queue(self.tenant, "email", template, recipient, reader=reader,
                                   **context)

    def _queued_lately(self, recipient: str, template: str) -> bool:
        """Whether this email went to this address within ``REPEAT_WINDOW``."""
        since = self.messages.clock() - REPEAT_WINDOW
        return bool(self.db.scalar(select(func.count()).select_from(Message).where(
            Message.tenant == self.tenant.slug, Message.template == template,
            Message.recipient == recipient.strip(), Message.created_at >= since)))

    def _notify_address_on_file(self, member: Member | None, entered: str | None,
                                template: str) -> list[Message]:
        """The registry's address hears of every registration and activation (SPEC §3.3)."""
        if member is None or not member.email or normalize_email(member.email) == entered:
            return []
        if template == "registration_notice" and self._queued_lately(member.email, template):
            return []
        return [self._queue(member.email, template)]


def _address(account: Account) -> str:
    """Where the account's activation goes: registration gives every account an email."""
    if not account.email:
        raise ValueError(f"account {account.id} has no email address to send its activation to")
    return account.email

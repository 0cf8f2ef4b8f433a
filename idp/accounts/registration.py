"""Registration against the member registry, manual review, and activation (SPEC §2, §3).

Nothing is half-created: an account exists (status ``pending``) only in the
same transaction as the activation email that lets its member finish. Every
answer that could tell whether someone is registered is the same on the page;
what differs goes by email to the address concerned.

The service queues messages in the caller's transaction; the caller commits; they
leave at commit (``idp.channels.dispatch``). The language the
member registers in is kept (on the account, or on the request under review)
for the messages they get when they are not at the screen: support's decision.

Single use holds under concurrent requests (SPEC §3.3), and the database decides it:
registrations of one member wait for each other on the member's row (``FOR UPDATE``),
so each sees what the one before it did; an activation link is spent by a conditional
``UPDATE`` whose row count says which of two concurrent uses won; a review decision is a
state transition ``pending`` → ``approved``/``rejected`` taken the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp import events
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.channels.services import Messages, Reader
from idp.db import rowcount, utcnow
from idp.identifiers import InvalidIdentifier, normalize_email, parse_mobile
from idp.registry.matching import MatchResult, contact_matches, same_mobile
from idp.registry.models import Member
from idp.tenancy import Tenant
from idp.tokens import ACTIVATION, InvalidToken, TokenService

# What the member is told, whatever happened behind it (the page never says more).
ACTIVATION_SENT = "activation_sent"   # also for "already registered": the email says which
LETTER_SENT = "letter_sent"   # no contact on file: the activation code goes by post
IN_REVIEW = "in_review"
NO_MATCH = "no_match"
BENEFICIARY = "beneficiary"
TERMINATED = "terminated"

# A registration repeated within this time sends no email again: what the first one sent is
# on its way. Twenty submissions of one form (a double click, a script) make one email;
# a member who starts again later gets a new one.
REPEAT_WINDOW = timedelta(minutes=5)

# The code of a letter: 8 characters without the look-alikes 0/O, 1/I/L (40 bits), printed
# in two groups of four; 5 wrong tries kill it.
LETTER_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LETTER_CODE_LENGTH = 8
LETTER_CODE_TRIES = 5


class ActivationLinkInvalid(Exception):
    """Tampered, expired, or replaced by a newer link."""


class ActivationLinkUsed(ActivationLinkInvalid):
    """The link did its work already: the account it was for is active."""


class LetterCodeRefused(Exception):
    """A code that does not open a registration; ``tries_left`` when one was counted (None
    when nothing waits under that number, which the page does not tell apart)."""

    def __init__(self, tries_left: int | None):
        super().__init__("letter code refused")
        self.tries_left = tries_left


class LetterCodeUsed(Exception):
    """The code did its work already: another use of it came first, or it is typed again
    while its account waits for the link it led to."""


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


def normalize_letter_code(typed: str) -> str:
    """A code as typed from paper: case, spaces and hyphens do not matter."""
    return "".join(char for char in typed.upper() if char.isalnum())


def format_letter_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _letter_code_alive(account: Account, now: datetime) -> bool:
    return (account.letter_code_expires_at is not None and account.letter_code_expires_at > now
            and account.letter_code_tries < LETTER_CODE_TRIES)


class Registrations:
    def __init__(self, db: Session, tenant: Tenant, messages: Messages, secret_key: str):
        self.db = db
        self.tenant = tenant
        self.messages = messages
        self.tokens = TokenService(secret_key, ACTIVATION)
        self.secret_key = secret_key.encode()

    # -- registration -------------------------------------------------------------------------

    def register(self, applicant: Applicant, match: MatchResult) -> Outcome:
        """Decide on a registration whose identity was matched against the registry.

        The mobile has been proven by an SMS code before this is called (both tenants);
        the email is proven by the activation link. What the registry holds decides the rest:

        - contacts on file must agree with those typed, or support reviews the request;
        - with none on file, card data alone does not open an account: the activation code
          goes by post to the registry's address (``LETTER_SENT``), or support reviews it
          (the tenant's ``[registration] without_contact``, or no address on file);
        - an account already waiting for activation keeps its contacts: a request with
          others goes to review and those contacts are told; the same ones get the link again.

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
        by_letter = not member.email and not member.mobile
        sent = LETTER_SENT if by_letter else ACTIVATION_SENT
        if existing is not None and existing.is_active:
            # Registering again: the member is told by email, the page says nothing more.
            address = existing.email or email
            if not self._queued_lately(address, "already_registered"):
                self._queue(address, "already_registered", login_url=f"{self.tenant.issuer}/login")
            return Outcome(sent)
        if match.outcome == "near_miss" or not contact_matches(member, email, applicant.mobile):
            reason = "near_miss" if match.outcome == "near_miss" else "contact_mismatch"
            return self._to_review(member, applicant, email, reason, match.differences)
        if existing is not None and (existing.email, existing.phone_number) != (email, applicant.mobile):
            # Never re-targeted: the contacts waiting for their link keep it, and hear of this.
            # A code by post proves no contact: once contested, it activates nothing.
            self._tell_pending_contacts(existing)
            self._withdraw_letter(existing)
            return self._to_review(member, applicant, email, "pending_elsewhere", [])
        if by_letter and (self.tenant.registration.without_contact != "letter"
                          or member.postal_address is None):
            return self._to_review(member, applicant, email, "no_contact", [])
        if by_letter and self._contested(member):
            # Support decides between the requests: no new letter meanwhile.
            return self._to_review(member, applicant, email, "pending_elsewhere", [])
        email_owner = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.email == email))
        if email_owner is not None and email_owner.member_id != member.id:
            return self._email_in_use(email, email_owner)
        try:
            # A savepoint: another member's registration may take this address at the same
            # moment (the unique address per tenant decides), and this one then ends cleanly.
            with self.db.begin_nested():
                account = existing or self._new_account(member, applicant, email)
                already_sent = (account.activation_nonce is not None
                                and self._queued_lately(email, "activation"))
                account.locale = self.messages.locale_for(self.tenant)
                account.phone_number_verified = applicant.mobile_verified
                if applicant.terms_version:
                    account.terms_version, account.terms_accepted_at = applicant.terms_version, utcnow()
                self.db.flush()
        except IntegrityError:
            email_owner = self.db.scalar(select(Account).where(
                Account.tenant == self.tenant.slug, Account.email == email))
            return self._email_in_use(email, email_owner) if email_owner else Outcome(sent)
        if by_letter:
            return self._letter(account, member, applicant.ip)
        if already_sent:
            # The link sent moments ago still works (its nonce is kept): nothing more to send.
            return Outcome(ACTIVATION_SENT)
        self._welcome_emails(account)
        self._tell_contacts_on_file(member, email, applicant.mobile, "registration_notice")
        events.record_event(self.db, events.REGISTRATION_ACCEPTED, tenant=self.tenant.slug,
                            account_id=account.id, ip=applicant.ip)
        return Outcome(ACTIVATION_SENT)

    def _locked(self, member: Member) -> Member:
        """The member's row, locked until the caller commits: one registration at a time."""
        return self.db.get_one(Member, member.id, with_for_update=True, populate_existing=True)

    def _email_in_use(self, email: str, owner: Account) -> Outcome:
        """The address belongs to someone else's account: tell that address, not the page,
        in that account's language. Its row is locked first, so that registrations racing
        for one address tell it once."""
        self.db.refresh(owner, with_for_update=True)
        if not self._queued_lately(email, "email_in_use"):
            self._queue(email, "email_in_use", reader=owner, login_url=f"{self.tenant.issuer}/login")
        return Outcome(ACTIVATION_SENT)

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
        submitted = {
            "first_name": applicant.first_name, "last_name": applicant.last_name,
            "birth_date": applicant.birth_date.isoformat(), "email": email,
            "mobile": applicant.mobile, "terms_version": applicant.terms_version,
        }
        # A new attempt with the same contacts replaces what was typed before: reviewers see
        # the latest. One with other contacts is a request of its own, so that what support
        # checked with the member is what it approves, whoever registers meanwhile.
        pending = next((request for request in self.db.scalars(select(RegistrationRequest).where(
            RegistrationRequest.member_id == member.id, RegistrationRequest.status == "pending"))
            if (request.submitted.get("email"), request.submitted.get("mobile"))
            == (email, applicant.mobile)), None)
        if pending is None:
            pending = RegistrationRequest(tenant=self.tenant.slug, member_id=member.id)
            self.db.add(pending)
        pending.reason, pending.submitted, pending.differences = reason, submitted, differences
        pending.locale = self.messages.locale_for(self.tenant)
        self.db.flush()
        events.record_event(self.db, events.REGISTRATION_REVIEW, tenant=self.tenant.slug,
                            ip=applicant.ip, request=pending.id, reason=reason)
        if not self._queued_lately(email, "registration_received"):
            self._queue(email, "registration_received")
            self._tell_contacts_on_file(member, email, applicant.mobile, "registration_notice")
        return Outcome(IN_REVIEW)

    def _tell_pending_contacts(self, account: Account) -> None:
        """The address of an account waiting for activation hears of a request with other
        contacts: its own link keeps working, and support looks at the other one."""
        if account.email and not self._queued_lately(account.email, "registration_contested"):
            self._queue(account.email, "registration_contested", reader=account,
                        letter=account.awaits_letter)

    # -- by post --------------------------------------------------------------------------------

    def _withdraw_letter(self, account: Account) -> None:
        """The code of a letter still travelling opens nothing more (a request with other
        contacts contests the account's: the letter would activate it with contacts its
        reader may not own)."""
        account.letter_code_digest = account.letter_code_expires_at = None
        account.letter_code_tries = 0

    def _contested(self, member: Member) -> bool:
        """Whether a request with other contacts than the pending account's awaits support."""
        return self.db.scalar(select(RegistrationRequest.id).where(
            RegistrationRequest.member_id == member.id, RegistrationRequest.status == "pending",
            RegistrationRequest.reason == "pending_elsewhere").limit(1)) is not None

    def _letter(self, account: Account, member: Member, ip: str | None) -> Outcome:
        """The activation code by post, to the registry's address: the member proves they
        live where the insurer writes to them. A code still valid is not sent again (a letter
        takes days, and costs); a dead one (expired, or out of tries) is replaced."""
        now = self.messages.clock()
        if account.awaits_letter and _letter_code_alive(account, now):
            return Outcome(LETTER_SENT)
        code = "".join(secrets.choice(LETTER_CODE_ALPHABET) for _ in range(LETTER_CODE_LENGTH))
        valid_until = now + timedelta(days=self.tenant.registration.letter_code_days)
        account.letter_code_digest = self._letter_digest(account, code)
        account.letter_code_expires_at, account.letter_code_tries = valid_until, 0
        account.letter_code_spent_digest = None
        account.activation_nonce = None
        # A letter still queued when its code has ended is not posted (it would open nothing).
        self.messages.queue_letter(self.tenant, "registration_letter", member.postal_address,
                                   code=format_letter_code(code), valid_until=valid_until.date(),
                                   member_number=account.member_number,
                                   letter_url=f"{self.tenant.issuer}/register/letter",
                                   expires_at=valid_until)
        events.record_event(self.db, events.REGISTRATION_LETTER, tenant=self.tenant.slug,
                            account_id=account.id, ip=ip)
        return Outcome(LETTER_SENT)

    def _letter_digest(self, account: Account, code: str) -> str:
        return hmac.new(self.secret_key, f"{account.id}:{code}".encode(), hashlib.sha256).hexdigest()

    def accept_letter_code(self, member_number: str, code: str) -> Account:
        """The code of a letter, typed back: the activation email goes to the account's address.

        Each try is counted before it is compared (parallel tries cannot pass the count);
        ``LETTER_CODE_TRIES`` wrong ones kill the code. The right one is spent by a conditional
        UPDATE: of concurrent uses one wins, the others get LetterCodeUsed, as does the code
        typed again while the account waits for the link it led to. LetterCodeRefused
        says nothing of which part was wrong, nor whether such an account exists.

        Commits the try's outcome before anything else: the count locks the account's row until
        the commit, and concurrent tries of the code wait on that lock, so it is held for these
        few statements only, not while the emails are written. Should writing or queueing them
        fail, the account waits for its link with its code spent, as after a link that expired:
        ``resend_activation`` sends one.
        """
        account = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.member_number == member_number.strip(),
            Account.status == "pending", or_(Account.letter_code_digest.is_not(None),
                                             Account.letter_code_spent_digest.is_not(None))))
        if account is None:
            raise LetterCodeRefused(None)
        digest = self._letter_digest(account, normalize_letter_code(code))
        if not account.awaits_letter:
            # The code came back already: typed again, it hears what its first use heard.
            if hmac.compare_digest(digest, account.letter_code_spent_digest or ""):
                raise LetterCodeUsed()
            raise LetterCodeRefused(None)
        now = self.messages.clock()
        counted = rowcount(self.db.execute(
            update(Account)
            .where(Account.id == account.id, Account.letter_code_digest.is_not(None),
                   Account.letter_code_tries < LETTER_CODE_TRIES,
                   Account.letter_code_expires_at > now)
            .values(letter_code_tries=Account.letter_code_tries + 1)
            .execution_options(synchronize_session=False)))
        self.db.refresh(account)
        if counted != 1:
            raise LetterCodeRefused(0) if account.awaits_letter else LetterCodeUsed()
        if not hmac.compare_digest(digest, account.letter_code_digest or ""):
            events.record_event(self.db, events.REGISTRATION_LETTER_FAILURE, tenant=self.tenant.slug,
                                account_id=account.id)
            self.db.commit()
            raise LetterCodeRefused(LETTER_CODE_TRIES - account.letter_code_tries)
        spent = rowcount(self.db.execute(
            update(Account)
            .where(Account.id == account.id, Account.letter_code_digest == digest)
            .values(letter_code_digest=None, letter_code_expires_at=None, letter_code_tries=0,
                    letter_code_spent_digest=digest)
            .execution_options(synchronize_session=False)))
        self.db.refresh(account)
        if spent != 1:
            raise LetterCodeUsed()
        events.record_event(self.db, events.REGISTRATION_ACCEPTED, tenant=self.tenant.slug,
                            account_id=account.id)
        self.db.commit()
        self._welcome_emails(account)
        return account

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

    def approve(self, request_id: int) -> None:
        """Support vouches for the member: the account is created and the activation sent.

        Refused (ReviewError, nothing changed once the caller rolls back) when the member's
        account has become active since the request: an active account's contacts change
        only through support's own command, after checking who asks.
        """
        request = self._decide(request_id, "approved")
        # get_one: the request's member_id is a cascading foreign key, so the member is there.
        member = self._locked(self.db.get_one(Member, request.member_id))
        existing = self._account_of(member)
        if existing is not None and existing.is_active:
            raise ReviewError(
                f"the account of member {member.member_number} is active: its contacts are not "
                f"changed by a registration; reject this request, and change them with "
                f"`idp accounts set-contact` once the member's identity is checked")
        submitted = request.submitted
        owner = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.email == submitted["email"]))
        if owner is not None and owner.member_id != member.id:
            raise ReviewError(f"{submitted['email']} is now the address of another account; "
                              f"reject this request")
        applicant = Applicant(
            first_name=submitted["first_name"], last_name=submitted["last_name"],
            birth_date=date.fromisoformat(submitted["birth_date"]), email=submitted["email"],
            mobile=submitted.get("mobile"), terms_version=submitted.get("terms_version"),
        )
        account = existing or self._new_account(member, applicant, applicant.email)
        account.email, account.phone_number = applicant.email, applicant.mobile
        # Support vouched for the person, not for the mobile: only an SMS code proves it.
        account.phone_number_verified = False
        account.letter_code_digest = account.letter_code_expires_at = None
        account.locale = request.locale
        if applicant.terms_version:
            account.terms_version, account.terms_accepted_at = applicant.terms_version, utcnow()
        events.record_event(self.db, events.REVIEW_APPROVED, tenant=self.tenant.slug,
                            account_id=account.id, request=request.id)
        self._welcome_emails(account, reader=account)

    def reject(self, request_id: int, reason: str) -> None:
        request = self._decide(request_id, "rejected", reason)
        events.record_event(self.db, events.REVIEW_REJECTED, tenant=self.tenant.slug,
                            request=request.id)
        self._queue(request.submitted["email"], "registration_rejected", reader=request)

    # -- activation -----------------------------------------------------------------------------

    def _welcome_emails(self, account: Account, reader: Reader | None = None) -> None:
        """The activation link; members who sign in with their number also get it (Miel).

        ``reader``: see ``Messages.locale_for`` (given when support decided).
        """
        if not self.tenant.logs_in_with_email:
            self._queue(_address(account), "identifier", reader=reader,
                        member_number=account.member_number, login_url=f"{self.tenant.issuer}/login")
        self._activation_email(account, reader)

    def _activation_email(self, account: Account, reader: Reader | None = None) -> None:
        account.activation_nonce = secrets.token_urlsafe(24)
        token = self.tokens.dumps({"a": account.id, "n": account.activation_nonce})
        self._queue(_address(account), "activation", reader=reader,
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

    def activate(self, account: Account, password: str, hasher: PasswordHasher) -> None:
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
                    email_verified=True, letter_code_spent_digest=None)
            .execution_options(synchronize_session=False)))
        self.db.refresh(account)
        if spent != 1:
            raise ActivationLinkUsed()
        events.record_event(self.db, events.ACCOUNT_ACTIVATED, tenant=self.tenant.slug,
                            account_id=account.id)
        member = self.db.get(Member, account.member_id) if account.member_id else None
        self._tell_contacts_on_file(member, account.email, account.phone_number, "activation_notice")

    def resend_activation(self, email: str) -> None:
        """A new link for a pending account with this address; for an active one, an email
        saying it needs none, with the ways to sign in and to a new password (at most once per
        ``REPEAT_WINDOW``); nothing otherwise. The page says the same whatever happened.

        Not for an account waiting for its letter: its link comes once the code is back.
        """
        account = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.email == normalize_email(email),
            Account.status.in_(("pending", "active"))))
        if account is None or account.email is None:
            return
        if not account.is_active:
            if account.letter_code_digest is None:
                self._activation_email(account)
        elif not self._queued_lately(account.email, "activation_not_needed"):
            self._queue(account.email, "activation_not_needed", reader=account,
                        login_url=f"{self.tenant.issuer}/login",
                        reset_url=f"{self.tenant.issuer}/forgot-password")

    # -- messages -------------------------------------------------------------------------------

    def _queue(self, recipient: str, template: str, *, reader: Reader | None = None,
               **context) -> Message:
        """An email of the registration's, in ``reader``'s language (see Messages.locale_for)."""
        return self.messages.queue(self.tenant, "email", template, recipient, reader=reader,
                                   **context)

    def _queued_lately(self, recipient: str, template: str) -> bool:
        """Whether this message went to this recipient within ``REPEAT_WINDOW``."""
        since = self.messages.clock() - REPEAT_WINDOW
        return bool(self.db.scalar(select(func.count()).select_from(Message).where(
            Message.tenant == self.tenant.slug, Message.template == template,
            Message.recipient == recipient.strip(), Message.created_at >= since)))

    def _tell_contacts_on_file(self, member: Member | None, email: str | None,
                               mobile: str | None, template: str) -> None:
        """The registry's contact hears of every registration and activation made with other
        contacts than its own (SPEC §3.3): its email, or failing one its mobile, by SMS."""
        if member is None:
            return
        if member.email:
            if normalize_email(member.email) != normalize_email(email or ""):
                recipient, channel = member.email, "email"
            else:
                return
        elif member.mobile and not same_mobile(member.mobile, mobile or ""):
            try:
                recipient, channel = parse_mobile(member.mobile), "sms"
            except InvalidIdentifier:
                return  # a number on file that is no mobile receives nothing
        else:
            return
        if template == "registration_notice" and self._queued_lately(recipient, template):
            return
        self.messages.queue(self.tenant, channel, template, recipient)


def _address(account: Account) -> str:
    """Where the account's activation goes: registration gives every account an email."""
    if not account.email:
        raise ValueError(f"account {account.id} has no email address to send its activation to")
    return account.email

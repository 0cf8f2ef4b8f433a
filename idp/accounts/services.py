"""Account services: sign-in by identifier and password, account creation."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, case, func, literal, or_, select, update
from sqlalchemy.orm import Session

from idp import events, ratelimit
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import DEFAULT_PREFERENCES, Account
from idp.channels.masking import mask_email
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.db import load, rowcount, utcnow
from idp.identifiers import InvalidIdentifier, is_member_number, normalize_email, parse_member_number
from idp.mfa.services import TrustedDevices
from idp.oidc.models import Token
from idp.oidc.revocation import revoke_tokens
from idp.oidc.sessions import end_sessions
from idp.ratelimit import RateLimiter, TooManyAttempts
from idp.store import Store
from idp.tenancy import Tenant


class AccountExists(Exception):
    """An account with this email or member number already exists in the tenant."""


class EmailInUse(Exception):
    """Another account of the tenant already has this email address."""


# The statements of ``find_by_identifier`` and ``account_by_id``, built once: each is compiled
# once (``load``), not at every sign-in.
_BY_NUMBER = select(*Account.__table__.columns).where(Account.tenant == bindparam("tenant"),
                                                      Account.member_number == bindparam("identifier"))
# Where the email is the identifier, only accounts not yet migrated to it still sign in with
# the number (SPEC §7).
_BY_LEGACY_NUMBER = _BY_NUMBER.where(Account.legacy_login.is_(True))
_BY_EMAIL = select(*Account.__table__.columns).where(Account.tenant == bindparam("tenant"),
                                                     Account.email == bindparam("identifier"))
_BY_ID = select(*Account.__table__.columns).where(Account.id == bindparam("id"))


def find_by_identifier(db: Session, tenant: Tenant, identifier: str) -> Account | None:
    """The account an identifier names in this tenant: email or member number per tenant."""
    try:
        member_number: str | None = parse_member_number(identifier)
    except InvalidIdentifier:
        member_number = None
    if member_number is not None:
        query, value = (_BY_LEGACY_NUMBER if tenant.logs_in_with_email else _BY_NUMBER), member_number
    elif tenant.logs_in_with_email and "@" in identifier:
        query, value = _BY_EMAIL, normalize_email(identifier)
    else:
        return None
    return load(db, Account, query, {"tenant": tenant.slug, "identifier": value})


def account_by_id(db: Session, account_id: str) -> Account | None:
    """The account with this id, as ``Session.get`` would give it (``load``: the steps of a
    sign-in read it at each request)."""
    return load(db, Account, _BY_ID, {"id": account_id})


def email_in_use(db: Session, tenant: Tenant, email: str, account: Account) -> bool:
    """Whether another account of the tenant has this address."""
    return db.scalar(select(Account.id).where(
        Account.tenant == tenant.slug, Account.email == normalize_email(email),
        Account.id != account.id)) is not None


class EndedSessions:
    """Per account, the instant before which its browser sessions are over (SPEC §6).

    Sessions live in the store, so this record does too; it is read wherever a session is
    read (``accounts.authn``). It is kept as long as the longest session (the absolute
    timeout, ``ttl``): no session signed in before it can outlive it.
    """

    def __init__(self, store: Store, ttl: int, clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl = ttl
        self.clock = clock

    @staticmethod
    def _key(account_id: str) -> str:
        return f"sessions-ended:{account_id}"

    def end_all(self, account_id: str) -> float:
        """Every session of the account signed in until now is over; this instant."""
        instant = self.clock()
        self.store.set(self._key(account_id), repr(instant), self.ttl)
        return instant

    def ended_before(self, account_id: str) -> float | None:
        raw = self.store.get(self._key(account_id))
        return float(raw) if raw else None


def end_other_sign_ins(db: Session, ended: EndedSessions, account: Account, *,
                       cause: str, keep_sid: str | None = None) -> float:
    """What a change of factor ends (SPEC §6): every browser session of the account, its
    tokens (refresh tokens included) and its trusted browsers; the portals its sessions signed
    in to are told (back-channel logout), but those of ``keep_sid``, the browser that made the
    change. Returns the instant from which a session is kept: that browser signs in again from
    it (``accounts.authn.renew``). Tokens and devices go in the caller's transaction."""
    _end_what_it_opened(db, account, session_reason=cause, event=events.TOKEN_REVOKED,
                        reason=cause, keep_sid=keep_sid)
    return ended.end_all(account.id)


def _end_what_it_opened(db: Session, account: Account, *, session_reason: str, event: str,
                        reason: str, keep_sid: str | None) -> None:
    """The account's provider sessions end but ``keep_sid`` (their portals are told), its
    trusted browsers are forgotten and its tokens revoked (``event``, ``reason``)."""
    end_sessions(db, account.tenant, account.id, reason=session_reason, keep=keep_sid)
    TrustedDevices(db).revoke_all(account.id)
    revoke_tokens(db, Token.account_id == account.id, event, tenant=account.tenant,
                  account_id=account.id, reason=reason)


def change_email(db: Session, messages: Messages, tenant: Tenant, account: Account, email: str,
                 *, reason: str, ended: EndedSessions | None = None,
                 keep_sid: str | None = None) -> list[Message]:
    """Give the account a proven address; the previous one, if any, is told (SPEC §6).

    The caller has proven the address (a code sent there, or support), checked it is not
    in use (``email_in_use``), and commits. Notices about the account go out in its
    language: they are for its owner, whoever made the change (the member, or support
    from the CLI).

    ``ended``: a change of factor (the member's, or support's) ends the account's sessions,
    tokens and trusted browsers (``end_other_sign_ins``). Without it nothing ends: the move
    of the identifier to the email (SPEC §7) is made while signing in.
    """
    previous, account.email = account.email, normalize_email(email)
    account.email_verified = True
    events.record_event(db, events.EMAIL_CHANGED, tenant=tenant.slug, account_id=account.id,
                        reason=reason)
    if ended is not None:
        end_other_sign_ins(db, ended, account, cause=f"email-change:{reason}", keep_sid=keep_sid)
    if not previous or previous == account.email:
        return []
    return [messages.queue(tenant, "email", "email_changed", previous, reader=account,
                           masked_email=mask_email(account.email))]


def change_mobile(db: Session, messages: Messages, tenant: Tenant, account: Account, number: str,
                  *, reason: str, ended: EndedSessions,
                  keep_sid: str | None = None) -> list[Message]:
    """Give the account a proven mobile number (E.164); its email address, if any, is told.

    The caller has proven the number (a code sent there, or support) and commits. The
    notice is in the account's language, as in ``change_email``. A change of factor: the
    account's sessions, tokens and trusted browsers end (``end_other_sign_ins``).
    """
    account.phone_number, account.phone_number_verified = number, True
    events.record_event(db, events.MOBILE_CHANGED, tenant=tenant.slug, account_id=account.id,
                        reason=reason)
    end_other_sign_ins(db, ended, account, cause=f"mobile-change:{reason}", keep_sid=keep_sid)
    if not account.email:
        return []
    return [messages.queue(tenant, "email", "mobile_changed", account.email, reader=account,
                           last_digits=number[-2:])]


@dataclass
class SignInContext:
    ip: str | None
    user_agent: str | None
    # The language of the pages signed in on: it becomes the account's (``record_sign_in``).
    locale: str | None = None


def record_sign_in(db: Session, tenant: Tenant, account: Account, context: SignInContext,
                   **data) -> None:
    """The member proved who they are: audit it, and keep the language of the pages they
    used for the messages they get when they are not at the screen. The caller commits."""
    # Set only when it changes: an assignment, even of the same value, leaves the account for the
    # unit of work to flush (the audit row's statement then runs a flush for nothing).
    if context.locale and account.locale != context.locale:
        account.locale = context.locale
    events.record_event(db, events.LOGIN_SUCCESS, tenant=tenant.slug, account_id=account.id,
                        ip=context.ip, user_agent=context.user_agent, **data)


def _part(position: int):
    return func.split_part(Account.password_hash, "$", position)


# The legacy_cost of a stored hash, computed by the database (``LegacyCosts``): the scheme
# and its cost only, so that the accounts of one import make one row.
_LEGACY_COST = case(
    (Account.password_hash.startswith("$wrapped-bcrypt$", autoescape=True),
     literal("bcrypt$") + _part(4)),
    (Account.password_hash.startswith("$wrapped-pbkdf2_sha256$", autoescape=True),
     literal("pbkdf2_sha256$") + _part(3)),
    (Account.password_hash.startswith("pbkdf2_sha256$", autoescape=True),
     literal("pbkdf2_sha256$") + _part(2)),
    *((Account.password_hash.startswith(prefix, autoescape=True), literal("bcrypt$") + _part(3))
      for prefix in ("$2a$", "$2b$", "$2y$")),
)


class LegacyCosts:
    """The legacy costs (``hashing.legacy_cost``) of the hashes each tenant still holds from the
    previous system, which every password check of that tenant then spends
    (``PasswordHasher.verify``).

    Read from the database at most once per ``ttl`` seconds per process: an import (or the
    last imported member's first sign-in) is taken into account within that time.
    """

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._known: dict[str, tuple[float, frozenset[str]]] = {}

    def of(self, db: Session, tenant: Tenant) -> frozenset[str]:
        now = self.clock()
        known = self._known.get(tenant.slug)
        if known is None or known[0] <= now:
            found = db.scalars(select(_LEGACY_COST).where(
                Account.tenant == tenant.slug, _LEGACY_COST.is_not(None)).distinct())
            # A cost that does not read (a hash the hasher refuses) is ignored by the hasher.
            known = self._known[tenant.slug] = (now + self.ttl, frozenset(found))
        return known[1]


class Authenticator:
    """Checks identifier + password; same work and answer whether or not the account exists,
    and whatever hash it has (``LegacyCosts``)."""

    def __init__(self, db: Session, hasher: PasswordHasher, legacy_costs: LegacyCosts):
        self.db = db
        self.hasher = hasher
        self.legacy_costs = legacy_costs

    def find(self, tenant: Tenant, identifier: str) -> Account | None:
        """The account the identifier names, active or not (``verify`` takes it)."""
        return find_by_identifier(self.db, tenant, identifier)

    def verify(self, tenant: Tenant, identifier: str, account: Account | None, password: str,
               context: SignInContext) -> Account | None:
        """The password against ``account`` (``find``): the account, or None, audited either
        way; a failure is committed here, a success with the rest of the sign-in (by the
        caller). Without an account a hash is verified all the same."""
        usable = account if account is not None and account.is_active else None
        result = self.hasher.verify(usable.password_hash if usable else None, password,
                                    legacy_costs=self.legacy_costs.of(self.db, tenant))
        if usable is None or not result.ok:
            # Failures on member numbers where the email is the identifier are the migration's
            # follow-up figure (SPEC §7).
            legacy = tenant.logs_in_with_email and is_member_number(identifier)
            events.record_event(
                self.db, events.LEGACY_LOGIN_FAILURE if legacy else events.LOGIN_FAILURE,
                tenant=tenant.slug,
                account_id=account.id if account else None, ip=context.ip,
                user_agent=context.user_agent,
            )
            self.db.commit()
            return None
        if result.needs_rehash:
            usable.password_hash = self.hasher.hash(password)
            usable.password_changed_at = usable.password_changed_at or utcnow()
        record_sign_in(self.db, tenant, usable, context)
        return usable


class TooManyPasswordChecks(Exception):
    """The password given again on the account pages was wrong too often (``REAUTH_PER_ACCOUNT``):
    the session it was asked in must end."""


class Reauthentication:
    """The current password asked again before a change a session alone may not make (SPEC §6).

    Every check is counted per account before it runs, whichever session asks, so a session
    taken over cannot be used to guess the password; each wrong one is audited.
    """

    def __init__(self, db: Session, store: Store, hasher: PasswordHasher):
        self.db = db
        self.store = store
        self.hasher = hasher

    def check(self, tenant: Tenant, account: Account, password: str, *, ip: str | None,
              user_agent: str | None, page: str | None) -> bool:
        """Whether ``password`` is the account's.

        Raises ``TooManyPasswordChecks`` for the wrong password that reaches the limit, and for
        any check once it is reached (none runs then); the audit is committed before.
        """
        limiter = RateLimiter(self.store, ratelimit.REAUTH_PER_ACCOUNT)
        try:
            count = limiter.consume(account.id)
        except TooManyAttempts:
            self._locked(tenant, account, ip=ip, user_agent=user_agent, page=page)
            raise TooManyPasswordChecks() from None
        if self.hasher.verify(account.password_hash, password).ok:
            limiter.clear(account.id)
            return True
        events.record_event(self.db, events.REAUTH_FAILURE, tenant=tenant.slug,
                            account_id=account.id, ip=ip, user_agent=user_agent, page=page)
        if count >= ratelimit.REAUTH_PER_ACCOUNT.limit:
            self._locked(tenant, account, ip=ip, user_agent=user_agent, page=page)
            raise TooManyPasswordChecks()
        return False

    def _locked(self, tenant: Tenant, account: Account, *, ip: str | None,
                user_agent: str | None, page: str | None) -> None:
        events.record_event(self.db, events.REAUTH_LOCKED, tenant=tenant.slug,
                            account_id=account.id, ip=ip, user_agent=user_agent, page=page)
        # The page answers by ending the session, not with an error: keep the record whatever.
        self.db.commit()


def set_password(db: Session, hasher: PasswordHasher, account: Account, password: str,
                 *, reason: str, keep_sid: str | None = None) -> None:
    """A new password ends everything the old one opened (SPEC §5, §6).

    Trusted devices and tokens are revoked here; the account's provider sessions end but
    ``keep_sid`` (the browser that made the change), and the portals they signed in to are
    told (back-channel logout); browser sessions that signed in before
    ``password_changed_at`` are refused where sessions are read (``accounts.authn``). The
    caller commits.
    """
    account.password_hash = hasher.hash(password)
    account.password_changed_at = utcnow()
    _end_what_it_opened(db, account, session_reason=f"password-{reason}",
                        event=events.PASSWORD_CHANGED, reason=reason, keep_sid=keep_sid)


def change_password(db: Session, hasher: PasswordHasher, messages: Messages, tenant: Tenant,
                    account: Account, password: str, *, keep_sid: str | None = None) -> None:
    """The member's own change (the current password given again): ``set_password``, and the
    account's address is told. The caller commits."""
    set_password(db, hasher, account, password, reason="change", keep_sid=keep_sid)
    if account.email:
        messages.queue(tenant, "email", "password_changed", account.email,
                       login_url=f"{tenant.issuer}/login")


def delete_account(db: Session, messages: Messages, tenant: Tenant, account: Account, *,
                   ip: str | None) -> None:
    """Delete the account (SPEC §6), audit-logged; its address is told. The caller commits.

    Tokens, codes, consents, trusted devices and passkeys go with it (ON DELETE CASCADE); its
    sessions end first, so that the portals they signed in to are told.
    """
    end_sessions(db, tenant.slug, account.id, reason="account-deleted")
    events.record_event(db, events.ACCOUNT_DELETED, tenant=tenant.slug, account_id=account.id,
                        ip=ip)
    if account.email:
        messages.queue(tenant, "email", "account_deleted", account.email)
    db.delete(account)


def accept_terms(db: Session, tenant: Tenant, account: Account,
                 preferences: Mapping[str, object] | None, *, ip: str | None) -> None:
    """The current terms accepted (first sign-in or a new version, SPEC §3.2), with the
    communication preferences where the tenant asks them (``set_preferences``). The caller
    commits."""
    account.terms_version, account.terms_accepted_at = tenant.terms_version, utcnow()
    if preferences is not None:
        set_preferences(db, tenant, account, preferences, ip=ip)
    events.record_event(db, events.TERMS_ACCEPTED, tenant=tenant.slug, account_id=account.id,
                        ip=ip, version=tenant.terms_version)


def set_preferences(db: Session, tenant: Tenant, account: Account,
                    preferences: Mapping[str, object], *, ip: str | None) -> None:
    """The member's communication preferences (SPEC §3.2), exposed as a claim. A change is
    audit-logged with the values set, so that a marketing consent given or withdrawn is on
    record. The caller commits."""
    chosen = {name: preferences[name] for name in DEFAULT_PREFERENCES}
    if chosen == account.preferences:
        return
    account.preferences = chosen
    events.record_event(db, events.PREFERENCES_CHANGED, tenant=tenant.slug, account_id=account.id,
                        ip=ip, preferences=chosen)


def create_account(
    db: Session,
    hasher: PasswordHasher,
    tenant: Tenant,
    *,
    given_name: str,
    family_name: str,
    password: str | None,
    email: str | None = None,
    member_number: str | None = None,
    birthdate: date | None = None,
    phone_number: str | None = None,
    legacy_login: bool = False,
    password_hash: str | None = None,
) -> Account:
    """Create an active account (operators, demo); the caller commits.

    ``legacy_login``: an account of the previous system, which signs in with its member
    number until it moves to its email (SPEC §7); its email on file is not proven yet.
    ``password_hash``: instead of ``password``, a hash imported from the previous system,
    stored wrapped in argon2id (``PasswordHasher.wrap``) and replaced by a plain argon2id
    hash at the first sign-in.
    """
    if (password is None) == (password_hash is None):
        raise ValueError("give a password or a password hash")
    if not email and not member_number:
        raise ValueError("an account needs an email or a member number")
    if member_number is not None:
        try:
            member_number = parse_member_number(member_number)
        except InvalidIdentifier:
            raise ValueError("a member number has exactly 8 digits") from None
    if legacy_login and not (tenant.logs_in_with_email and member_number):
        raise ValueError("a legacy account has a member number, where members sign in with an email")
    email = normalize_email(email) if email else None
    clauses = []
    if email:
        clauses.append(Account.email == email)
    if member_number:
        clauses.append(Account.member_number == member_number)
    existing = db.scalar(select(Account).where(Account.tenant == tenant.slug, or_(*clauses)))
    if existing is not None:
        raise AccountExists("an account with this email or member number already exists")
    account = Account(
        tenant=tenant.slug,
        email=email,
        email_verified=bool(email) and not legacy_login,
        member_number=member_number,
        legacy_login=legacy_login,
        given_name=given_name,
        family_name=family_name,
        birthdate=birthdate,
        phone_number=phone_number,
        phone_number_verified=bool(phone_number),
        password_hash=(hasher.hash(password) if password is not None
                       else hasher.wrap(password_hash or "")),
        password_changed_at=utcnow(),
        status="active",
        terms_version=tenant.terms_version,
    )
    db.add(account)
    db.flush()
    events.record_event(db, events.ACCOUNT_CREATED, tenant=tenant.slug, account_id=account.id)
    return account


def wrap_legacy_hashes(db: Session, hasher: PasswordHasher, *, batch: int = 100) -> int:
    """Wrap in argon2id every hash of the previous system still stored as it was imported
    (``PasswordHasher.wrap``), ``batch`` accounts per transaction; how many were wrapped.

    No password is needed and none is verified. Each account is changed only if its hash
    is still the one read (a member signing in meanwhile gets a plain argon2id hash, which
    stays), so it runs safely next to sign-ins, and again: what is wrapped is left alone.
    A stopped run keeps the batches it committed.
    """
    legacy = or_(*(Account.password_hash.startswith(prefix, autoescape=True)
                   for prefix in ("pbkdf2_sha256$", "$2a$", "$2b$", "$2y$")))
    wrapped, after = 0, ""
    while True:
        rows = db.execute(select(Account.id, Account.password_hash)
                          .where(legacy, Account.id > after)
                          .order_by(Account.id).limit(batch)).all()
        if not rows:
            return wrapped
        for account_id, stored in rows:
            if stored is not None and hasher.is_unwrapped_legacy(stored):
                wrapped += rowcount(db.execute(
                    update(Account)
                    .where(Account.id == account_id, Account.password_hash == stored)
                    .values(password_hash=hasher.wrap(stored))))
        db.commit()
        after = rows[-1].id

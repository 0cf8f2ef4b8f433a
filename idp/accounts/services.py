"""Account services: sign-in by identifier and password, account creation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from idp import events
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account
from idp.channels.masking import mask_email
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.db import utcnow
from idp.identifiers import InvalidIdentifier, is_member_number, normalize_email, parse_member_number
from idp.mfa.services import TrustedDevices
from idp.oidc.models import Token
from idp.oidc.revocation import revoke_tokens
from idp.tenancy import Tenant


class AccountExists(Exception):
    """An account with this email or member number already exists in the tenant."""


class EmailInUse(Exception):
    """Another account of the tenant already has this email address."""


def find_by_identifier(db: Session, tenant: Tenant, identifier: str) -> Account | None:
    """The account an identifier names in this tenant: email or member number per tenant."""
    query = select(Account).where(Account.tenant == tenant.slug)
    try:
        member_number: str | None = parse_member_number(identifier)
    except InvalidIdentifier:
        member_number = None
    if member_number is not None:
        query = query.where(Account.member_number == member_number)
        if tenant.logs_in_with_email:
            # Only accounts not yet migrated to their email still sign in with the number (SPEC §7).
            query = query.where(Account.legacy_login.is_(True))
    elif tenant.logs_in_with_email and "@" in identifier:
        query = query.where(Account.email == normalize_email(identifier))
    else:
        return None
    return db.scalar(query)


def email_in_use(db: Session, tenant: Tenant, email: str, account: Account) -> bool:
    """Whether another account of the tenant has this address."""
    return db.scalar(select(Account.id).where(
        Account.tenant == tenant.slug, Account.email == normalize_email(email),
        Account.id != account.id)) is not None


def change_email(db: Session, messages: Messages, tenant: Tenant, account: Account, email: str,
                 *, reason: str) -> list[Message]:
    """Give the account a proven address; the previous one, if any, is told (SPEC §6).

    The caller has proven the address (a code sent there, or support), checked it is not
    in use (``email_in_use``), and commits. Notices about the account go out in its
    language: they are for its owner, whoever made the change (the member, or support
    from the CLI).
    """
    previous, account.email = account.email, normalize_email(email)
    account.email_verified = True
    events.record_event(db, events.EMAIL_CHANGED, tenant=tenant.slug, account_id=account.id,
                        reason=reason)
    if not previous or previous == account.email:
        return []
    return [messages.queue(tenant, "email", "email_changed", previous, reader=account,
                           masked_email=mask_email(account.email))]


def change_mobile(db: Session, messages: Messages, tenant: Tenant, account: Account, number: str,
                  *, reason: str) -> list[Message]:
    """Give the account a proven mobile number (E.164); its email address, if any, is told.

    The caller has proven the number (a code sent there, or support) and commits. The
    notice is in the account's language, as in ``change_email``.
    """
    account.phone_number, account.phone_number_verified = number, True
    events.record_event(db, events.MOBILE_CHANGED, tenant=tenant.slug, account_id=account.id,
                        reason=reason)
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
    if context.locale:
        account.locale = context.locale
    events.record_event(db, events.LOGIN_SUCCESS, tenant=tenant.slug, account_id=account.id,
                        ip=context.ip, user_agent=context.user_agent, **data)


class Authenticator:
    """Checks identifier + password; same work and answer whether or not the account exists."""

    def __init__(self, db: Session, hasher: PasswordHasher):
        self.db = db
        self.hasher = hasher

    def authenticate(
        self, tenant: Tenant, identifier: str, password: str, context: SignInContext
    ) -> Account | None:
        account = find_by_identifier(self.db, tenant, identifier)
        usable = account if account is not None and account.is_active else None
        result = self.hasher.verify(usable.password_hash if usable else None, password)
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
        self.db.commit()
        return usable


def set_password(db: Session, hasher: PasswordHasher, account: Account, password: str,
                 *, reason: str) -> None:
    """A new password ends everything the old one opened (SPEC §5, §6).

    Trusted devices and tokens are revoked here; browser sessions that signed
    in before ``password_changed_at`` are refused where sessions are read
    (``accounts.authn``). The caller commits.
    """
    account.password_hash = hasher.hash(password)
    account.password_changed_at = utcnow()
    TrustedDevices(db).revoke_all(account.id)
    revoke_tokens(db, Token.account_id == account.id, events.PASSWORD_CHANGED,
                  tenant=account.tenant, account_id=account.id, reason=reason)


def change_password(db: Session, hasher: PasswordHasher, messages: Messages, tenant: Tenant,
                    account: Account, password: str) -> None:
    """The member's own change (the current password given again): ``set_password``, and the
    account's address is told. The caller commits."""
    set_password(db, hasher, account, password, reason="change")
    if account.email:
        messages.queue(tenant, "email", "password_changed", account.email,
                       login_url=f"{tenant.issuer}/login")


def delete_account(db: Session, messages: Messages, tenant: Tenant, account: Account, *,
                   ip: str | None) -> None:
    """Delete the account (SPEC §6), audit-logged; its address is told. The caller commits.

    Tokens, codes, consents, trusted devices and passkeys go with it (ON DELETE CASCADE).
    """
    events.record_event(db, events.ACCOUNT_DELETED, tenant=tenant.slug, account_id=account.id,
                        ip=ip)
    if account.email:
        messages.queue(tenant, "email", "account_deleted", account.email)
    db.delete(account)


def accept_terms(db: Session, tenant: Tenant, account: Account,
                 preferences: dict[str, object] | None) -> None:
    """The current terms accepted (first sign-in or a new version, SPEC §3.2), with the
    communication preferences where the tenant asks them. The caller commits."""
    account.terms_version, account.terms_accepted_at = tenant.terms_version, utcnow()
    if preferences is not None:
        account.preferences = preferences
    events.record_event(db, events.TERMS_ACCEPTED, tenant=tenant.slug, account_id=account.id,
                        version=tenant.terms_version)


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
    kept as is and upgraded to argon2id at the first sign-in.
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
        password_hash=hasher.hash(password) if password is not None else password_hash,
        password_changed_at=utcnow(),
        status="active",
        terms_version=tenant.terms_version,
    )
    db.add(account)
    db.flush()
    events.record_event(db, events.ACCOUNT_CREATED, tenant=tenant.slug, account_id=account.id)
    return account

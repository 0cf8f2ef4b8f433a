"""Recovery: a password reset link by email, and (Miel) the member number by email (SPEC §6).

Answers never tell whether an identifier exists: what differs goes by email.
A reset link carries a fingerprint of the current password hash, so it dies
as soon as the password changes — including by its own use — and a digest of
the address it was sent to, so it dies when the account's email changes: a link
in a mailbox the member gave up opens nothing. Of concurrent uses of one link, one
changes the password: each locks the account's row and checks the link again.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import events, ratelimit
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account
from idp.accounts.services import find_by_identifier, set_password
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.ratelimit import RateLimiter
from idp.registry.models import Member
from idp.store import Store
from idp.tenancy import Tenant
from idp.tokens import PASSWORD_RESET, InvalidToken, TokenService


class ResetLinkInvalid(Exception):
    """Tampered, expired, or made for a password or an address that has changed since."""


def _fingerprint(account: Account) -> str:
    return hashlib.sha256((account.password_hash or "").encode()).hexdigest()[:16]


def _address_digest(account: Account) -> str:
    """The address the link is sent to, as a digest: links are not to carry it in clear."""
    return hashlib.sha256(f"reset-link:{(account.email or '').lower()}".encode()).hexdigest()[:16]


class Recovery:
    def __init__(self, db: Session, tenant: Tenant, messages: Messages, secret_key: str):
        self.db = db
        self.tenant = tenant
        self.messages = messages
        self.tokens = TokenService(secret_key, PASSWORD_RESET)

    def request_reset(self, identifier: str) -> list[Message]:
        """Queue a reset link if the identifier names an active account with an email."""
        account = find_by_identifier(self.db, self.tenant, identifier)
        if account is None or not account.is_active or not account.email:
            return []
        token = self.tokens.dumps({"a": account.id, "p": _fingerprint(account),
                                   "e": _address_digest(account)})
        events.record_event(self.db, events.RESET_REQUESTED, tenant=self.tenant.slug,
                            account_id=account.id)
        return [self.messages.queue(
            self.tenant, "email", "password_reset", account.email,
            reset_url=f"{self.tenant.issuer}/reset-password/{token}",
            minutes=self.tenant.links.reset_ttl_minutes)]

    def account_for_link(self, token: str) -> Account:
        try:
            payload = self.tokens.loads(token, max_age=self.tenant.links.reset_ttl_minutes * 60)
        except InvalidToken:
            raise ResetLinkInvalid() from None
        account = self.db.get(Account, str(payload.get("a"))) if isinstance(payload, dict) else None
        if account is None or account.tenant != self.tenant.slug or not _opens(payload, account):
            raise ResetLinkInvalid()
        return account

    def reset(self, account: Account, password: str, hasher: PasswordHasher,
              store: Store) -> list[Message]:
        """New password; sessions, tokens and trusted devices end; sign-in is unlocked.

        ``account`` is the one ``account_for_link`` gave. Its row is locked and read again
        first: a concurrent use of the same link that came first has changed the password
        (and so the link's fingerprint), and this one raises ResetLinkInvalid, changing
        nothing.
        """
        link = {"p": _fingerprint(account), "e": _address_digest(account)}
        self.db.refresh(account, with_for_update=True)
        if not _opens(link, account):
            raise ResetLinkInvalid()
        set_password(self.db, hasher, account, password, reason="reset")
        unlock = RateLimiter(store, ratelimit.LOGIN_PER_IDENTIFIER)
        for identifier in (account.email, account.member_number):
            if identifier:
                unlock.clear(f"{self.tenant.slug}:{identifier.lower()}")
        if not account.email:
            return []  # an account without an address has none to be warned at
        return [self.messages.queue(self.tenant, "email", "password_changed", account.email,
                                    login_url=f"{self.tenant.issuer}/login")]

    def remind_login_email(self, member_number: str) -> list[Message]:
        """Where members sign in with their email: which address it is, sent to it (SPEC §7)."""
        return self._remind(member_number.strip(), "identifier_email")

    def remind_identifier(self, member: Member | None) -> list[Message]:
        """Miel: the member number, sent to the account's email (SPEC §6)."""
        return self._remind(member.member_number, "identifier") if member is not None else []

    def _remind(self, member_number: str, template: str) -> list[Message]:
        """The identifier reminder ``template``, to the email of the active account with this number."""
        account = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.member_number == member_number,
            Account.status == "active"))
        if account is None or not account.email:
            return []
        events.record_event(self.db, events.IDENTIFIER_REMINDED, tenant=self.tenant.slug,
                            account_id=account.id)
        return [self.messages.queue(self.tenant, "email", template, account.email,
                                    email=account.email, member_number=account.member_number,
                                    legacy=account.legacy_login,
                                    login_url=f"{self.tenant.issuer}/login")]


def _opens(link: dict, account: Account) -> bool:
    """Whether a reset link made for ``link`` (password fingerprint, address digest) still
    opens ``account``: active, same password, same address."""
    return (account.is_active and link.get("p") == _fingerprint(account)
            and link.get("e") == _address_digest(account))

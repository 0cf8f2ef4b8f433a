"""Recovery: a password reset link by email, and (Miel) the member number by email (SPEC §6).

Answers never tell whether an identifier exists, by their words or by their time: a page
only records what was typed (``RecoveryRequest``), the same work whatever it names, and the
worker carries it out after the request (``carry_out_requests``): it looks the identifier
up and, for an account that can receive it, queues the email, or does nothing.
A reset link carries a fingerprint of the current password hash, so it dies
as soon as the password changes — including by its own use — and a digest of
the address it was sent to, so it dies when the account's email changes: a link
in a mailbox the member gave up opens nothing. Of concurrent uses of one link, one
changes the password: each locks the account's row and checks the link again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from idp import events, ratelimit
from idp.accounts.hashing import PasswordHasher
from idp.accounts.models import Account, RecoveryRequest
from idp.accounts.services import find_by_identifier, set_password
from idp.channels import dispatch
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.ratelimit import RateLimiter
from idp.registry.matching import match_by_nir
from idp.store import Store
from idp.tenancy import Tenant
from idp.tokens import PASSWORD_RESET, InvalidToken, TokenService

log = logging.getLogger(__name__)


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

    # -- the pages: record the request, whatever it names ---------------------

    def request_reset(self, identifier: str) -> RecoveryRequest:
        """A reset link for the account ``identifier`` names, if any (``carry_out``)."""
        return self._record("reset", identifier=identifier)

    def request_login_email(self, member_number: str) -> RecoveryRequest:
        """Where members sign in with their email: which address it is, sent to it (SPEC §7)."""
        return self._record("login_email", member_number=member_number.strip())

    def request_member_number(self, nir: str, first_name: str, last_name: str,
                              birth_date: date) -> RecoveryRequest:
        """Miel: the member number, to the account's email, if the identity matches the
        registry as at registration (SPEC §6)."""
        return self._record("member_number", nir=nir, first_name=first_name,
                            last_name=last_name, birth_date=birth_date.isoformat())

    def _record(self, kind: str, **typed: str) -> RecoveryRequest:
        request = RecoveryRequest(tenant=self.tenant.slug, kind=kind, typed=typed,
                                  locale=self.messages.locale_for(self.tenant))
        self.db.add(request)
        dispatch.note_work(self.db)
        return request

    # -- the worker: look up and answer ----------------------------------------

    def carry_out(self, request: RecoveryRequest) -> list[Message]:
        """Queue what ``request`` calls for (nothing when it names no account that can
        receive it), in the language of the pages it was asked on. The caller commits."""
        typed = request.typed
        if request.kind == "reset":
            return self._send_reset(str(typed["identifier"]), request)
        if request.kind == "login_email":
            return self._remind(str(typed["member_number"]), "identifier_email", request)
        if request.kind == "member_number":
            match = match_by_nir(self.db, self.tenant, str(typed["nir"]),
                                 str(typed["first_name"]), str(typed["last_name"]),
                                 date.fromisoformat(str(typed["birth_date"])))
            if match.outcome == "match" and match.member is not None:
                return self._remind(match.member.member_number, "identifier", request)
        return []

    def _send_reset(self, identifier: str, request: RecoveryRequest) -> list[Message]:
        """A reset link, if the identifier names an active account with an email."""
        account = find_by_identifier(self.db, self.tenant, identifier)
        if account is None or not account.is_active or not account.email:
            return []
        token = self.tokens.dumps({"a": account.id, "p": _fingerprint(account),
                                   "e": _address_digest(account)})
        events.record_event(self.db, events.RESET_REQUESTED, tenant=self.tenant.slug,
                            account_id=account.id)
        return [self.messages.queue(
            self.tenant, "email", "password_reset", account.email, reader=request,
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

    def _remind(self, member_number: str, template: str,
                request: RecoveryRequest) -> list[Message]:
        """The identifier reminder ``template``, to the email of the active account with this number."""
        account = self.db.scalar(select(Account).where(
            Account.tenant == self.tenant.slug, Account.member_number == member_number,
            Account.status == "active"))
        if account is None or not account.email:
            return []
        events.record_event(self.db, events.IDENTIFIER_REMINDED, tenant=self.tenant.slug,
                            account_id=account.id)
        return [self.messages.queue(self.tenant, "email", template, account.email,
                                    reader=request, email=account.email,
                                    member_number=account.member_number,
                                    legacy=account.legacy_login,
                                    login_url=f"{self.tenant.issuer}/login")]


def _opens(link: dict, account: Account) -> bool:
    """Whether a reset link made for ``link`` (password fingerprint, address digest) still
    opens ``account``: active, same password, same address."""
    return (account.is_active and link.get("p") == _fingerprint(account)
            and link.get("e") == _address_digest(account))


# The oldest request no other worker holds, locked: built once, the worker looks at every wake-up.
_NEXT_REQUEST = (select(RecoveryRequest).order_by(RecoveryRequest.id).limit(1)
                 .with_for_update(skip_locked=True))


def carry_out_requests(db: Session, tenants: Mapping[str, Tenant], messages: Messages,
                       secret_key: str, *, limit: int = 100) -> list[Message]:
    """The worker's side: up to ``limit`` recorded requests, oldest first, each carried out
    and deleted in a transaction of its own; the messages they queued.

    On PostgreSQL each worker claims one request at a time (``FOR UPDATE SKIP LOCKED``), so
    none is answered twice. A request that cannot be carried out (a broken template, an
    address the queue refuses) is dropped and logged, never retried forever; a database
    error is left to the caller, and the request stays for the next look.
    """
    queued: list[Message] = []
    for _ in range(limit):
        request = db.scalars(_NEXT_REQUEST).first()
        if request is None:
            break
        request_id, kind = request.id, request.kind
        tenant = tenants.get(request.tenant)
        try:
            made = (Recovery(db, tenant, messages, secret_key).carry_out(request)
                    if tenant is not None else [])
        except SQLAlchemyError:
            db.rollback()
            raise
        except Exception as exc:  # one broken request must not stop the others
            db.rollback()
            log.warning("recovery request %s (%s) dropped: %s", request_id, kind,
                        type(exc).__name__)
            made = []
        db.execute(delete(RecoveryRequest).where(RecoveryRequest.id == request_id))
        db.commit()
        queued += made
    return queued

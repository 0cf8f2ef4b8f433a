"""The move of Malakoff's login identifier from the member number to the email (SPEC §7).

A *legacy* account (``Account.legacy_login``) came from the previous system and
still signs in with its member number. From the tenant's ``[migration]
starts_on`` date such a sign-in ends on "update my login identifier": the
member proves an email with a code (``migrate``) and from then on signs in
with it only. From ``cutoff_on`` member-number sign-ins are refused.

``LoginMigration.invite`` sends the invitations in batches. Each batch is one
transaction that both queues the emails (the message queue delivers them, with
retries) and marks the accounts invited, so an interrupted run leaves every
account either invited with its email queued or not invited at all: running
again finishes the work and never invites anyone twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp import events
from idp.accounts.models import Account
from idp.accounts.services import change_email
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.db import utcnow
from idp.events import AuditEvent
from idp.tenancy import Tenant


def is_legacy(tenant: Tenant, account: Account) -> bool:
    """Still signing in with the member number where the identifier is the email."""
    return tenant.logs_in_with_email and account.legacy_login


def needs_migration(tenant: Tenant, account: Account) -> bool:
    """A legacy account that signs in while the migration is open goes through it."""
    return is_legacy(tenant, account) and tenant.migration.phase() in ("open", "closed")


def migrate(db: Session, messages: Messages, tenant: Tenant, account: Account,
            email: str) -> list[Message]:
    """Make the proven ``email`` the account's identifier; the member number stops working.

    The caller has checked that no other account uses ``email`` and commits.
    """
    notices = change_email(db, messages, tenant, account, email, reason="migration")
    account.legacy_login = False
    account.login_migrated_at = utcnow()
    events.record_event(db, events.LOGIN_MIGRATED, tenant=tenant.slug, account_id=account.id)
    return notices


@dataclass(frozen=True)
class MigrationStatus:
    """The follow-up figures support needs (``idp migration status``)."""

    legacy: int
    legacy_without_email: int
    invited: int
    invited_not_migrated: int
    migrated: int
    migrated_since_invitation: int
    failed_legacy_sign_ins: int
    refused_after_cutoff: int


class LoginMigration:
    """Invitations and progress of a tenant's migration, for operators."""

    def __init__(self, db: Session, messages: Messages, tenant: Tenant,
                 clock: Callable[[], datetime] = utcnow):
        if not tenant.logs_in_with_email:
            raise ValueError(f"{tenant.slug} members do not sign in with an email")
        self.db = db
        self.messages = messages
        self.tenant = tenant
        self.clock = clock

    def _legacy(self):
        return select(Account).where(Account.tenant == self.tenant.slug,
                                     Account.legacy_login.is_(True), Account.status == "active")

    def _uninvited(self):
        """Legacy accounts with an email on file that have not been invited yet."""
        return self._legacy().where(Account.email.is_not(None), Account.migration_invited_at.is_(None))

    def _count(self, query) -> int:
        return self.db.scalar(select(func.count()).select_from(query.subquery())) or 0

    def to_invite(self) -> int:
        return self._count(self._uninvited())

    def invite(self, batch_size: int) -> Iterator[list[Message]]:
        """Queue and commit one batch of invitations at a time; yields each batch's messages.

        Each batch's messages leave when it commits (``Messages.delivered`` tells which
        did); the caller paces the batches; a message not sent then is delivered by the
        queue's worker.
        """
        login_url = f"{self.tenant.issuer}/login"
        while True:
            query = self._uninvited().order_by(Account.id).limit(batch_size)
            if self.db.get_bind().dialect.name == "postgresql":
                # Two operators running it at once never invite the same member twice.
                query = query.with_for_update(skip_locked=True)
            accounts = self.db.scalars(query).all()
            if not accounts:
                return
            now = self.clock()
            batch = []
            for account in accounts:
                account.migration_invited_at = now
                batch.append(self.messages.queue(
                    self.tenant, "email", "migration_invitation", account.email, reader=account,
                    member_number=account.member_number, email=account.email,
                    login_url=login_url, cutoff_on=self.tenant.migration.cutoff_on))
                events.record_event(self.db, events.MIGRATION_INVITED, tenant=self.tenant.slug,
                                    account_id=account.id)
            self.db.commit()
            yield batch

    def status(self) -> MigrationStatus:
        count = self._count
        tenant_accounts = select(Account).where(Account.tenant == self.tenant.slug)
        migrated = tenant_accounts.where(Account.login_migrated_at.is_not(None))

        def tagged(tag: str) -> int:
            return count(select(AuditEvent.id).where(AuditEvent.tenant == self.tenant.slug,
                                                     AuditEvent.tag == tag))

        return MigrationStatus(
            legacy=count(self._legacy()),
            legacy_without_email=count(self._legacy().where(Account.email.is_(None))),
            invited=count(tenant_accounts.where(Account.migration_invited_at.is_not(None))),
            invited_not_migrated=count(self._legacy().where(Account.migration_invited_at.is_not(None))),
            migrated=count(migrated),
            migrated_since_invitation=count(migrated.where(
                Account.migration_invited_at.is_not(None),
                Account.login_migrated_at >= Account.migration_invited_at)),
            failed_legacy_sign_ins=tagged(events.LEGACY_LOGIN_FAILURE),
            refused_after_cutoff=tagged(events.LEGACY_LOGIN_REFUSED),
        )

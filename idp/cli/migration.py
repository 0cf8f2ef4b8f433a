"""`idp migration`: the move of the login identifier from member number to email (SPEC §7).

The work is ``idp.accounts.migration.LoginMigration``; these commands pace it,
show progress and sum it up.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from idp.cli.common import CommandGroup, FiniteRange, tenant_by_slug, tenant_option

if TYPE_CHECKING:
    from idp.accounts.migration import LoginMigration
    from idp.channels.models import Message

group = CommandGroup("migration", help="Email-as-login migration: invitations and follow-up.")

# Where each delivery is logged, one line per message: the summary says it instead.
DELIVERY_LOG = "idp.channels.services"


def _migration(tenant: str) -> LoginMigration:
    from idp.accounts.migration import LoginMigration
    from idp.channels.services import Messages
    from idp.extensions import db, find_service

    the_tenant = tenant_by_slug(tenant)
    if not the_tenant.logs_in_with_email:
        raise click.BadParameter(f"{the_tenant.slug} members sign in with their member number, "
                                 "not an email: there is nothing to migrate", param_hint="--tenant")
    return LoginMigration(db(), find_service(Messages), the_tenant)


@group.command("invite")
@tenant_option(required=True, help="Tenant whose legacy accounts to invite (malakoff).")
@click.option("--batch", "batch_size", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Invitations queued and committed together.")
@click.option("--rate", type=FiniteRange(0.1, 1000), default=10.0, show_default=True,
              help="At most this many emails per second.")
@click.option("--dry-run", is_flag=True,
              help="Say how many accounts would be invited, and change and send nothing.")
def invite(tenant: str, batch_size: int, rate: float, dry_run: bool) -> None:
    """Email every legacy account with an address on file that was not invited yet.

    Resumable and idempotent: an account is marked invited in the same transaction
    that queues its email, so running it again (after an interruption, or to catch
    accounts imported since) invites only those never invited, and nobody twice.
    Emails not sent at once stay in the queue for `idp outbox work`. The run ends
    with one summary: how many were sent, delayed (SMTP unreachable: retried by the
    worker) or failed, with the last error once. --dry-run only counts.
    """
    migration = _migration(tenant)
    total = migration.to_invite()
    if dry_run:
        click.echo(f"dry run: {total} account(s) would be invited now; nothing was changed or sent")
        _figures(migration)
        return
    if total == 0:
        click.echo("nothing to do: every legacy account with an email has been invited")
        _figures(migration)
        return
    outcomes: Counter[str] = Counter()
    last_error: str | None = None
    with _deliveries_summarised(), \
            click.progressbar(length=total, label=f"inviting {total} account(s)") as bar:
        for batch in migration.invite(batch_size):
            started = time.monotonic()
            last_error = _outcomes(batch, outcomes) or last_error
            bar.update(len(batch))
            # Pace by the batch: never faster than --rate emails per second on average.
            time.sleep(max(0.0, len(batch) / rate - (time.monotonic() - started)))
    invited = sum(outcomes.values())
    click.echo(f"invited now: {invited} (sent: {outcomes['sent']}, left in the queue for "
               f"`idp outbox work`: {invited - outcomes['sent']})")
    if invited > outcomes["sent"]:
        click.echo(f"not sent yet: delayed {outcomes['pending']} (retried by `idp outbox work`), "
                   f"failed {outcomes['failed']}, expired {outcomes['expired']}"
                   + (f"; last error: {last_error}" if last_error else ""))
    _figures(migration)


def _outcomes(batch: Sequence[Message], outcomes: Counter[str]) -> str | None:
    """Count the batch's messages by status once each was tried; the last error seen, if any."""
    from sqlalchemy import select

    from idp.channels.models import Message
    from idp.channels.services import Messages
    from idp.extensions import find_service

    messages = find_service(Messages)
    for message in batch:
        messages.delivered(message)  # waits, boundedly, for the attempt that follows the commit
    rows = messages.session.execute(
        select(Message.status, Message.last_error).where(Message.id.in_([m.id for m in batch]))
    ).all()
    outcomes.update(status for status, _error in rows)
    return next((error for status, error in reversed(rows) if error and status != "sent"), None)


@contextmanager
def _deliveries_summarised() -> Iterator[None]:
    """Keep the per-message delivery lines (one per message when SMTP is down: thousands on a
    real run) off the terminal while the summary counts them."""
    logger = logging.getLogger(DELIVERY_LOG)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _figures(migration: LoginMigration) -> None:
    status = migration.status()
    click.echo(f"invited in all: {status.invited}; still legacy: {status.legacy}; "
               f"legacy without an email on file (asked at their next sign-in): "
               f"{status.legacy_without_email}")


@group.command("status")
@tenant_option(required=True, help="Tenant whose migration to report (malakoff).")
def status(tenant: str) -> None:
    """Where the migration stands: the follow-up figures support needs."""
    migration = _migration(tenant)
    policy = migration.tenant.migration
    figures = migration.status()
    dates = (f"starts {policy.starts_on or 'not planned'}, cut-off {policy.cutoff_on or 'none'}, "
             f"today: {policy.phase()}")
    rows = [
        ("phase", dates),
        ("still legacy (member number)", figures.legacy),
        ("  of which without an email on file", figures.legacy_without_email),
        ("invited", figures.invited),
        ("  invited, not migrated yet", figures.invited_not_migrated),
        ("migrated to email", figures.migrated),
        ("  migrated after an invitation", figures.migrated_since_invitation),
        ("failed sign-ins with a member number", figures.failed_legacy_sign_ins),
        ("member numbers refused after the cut-off", figures.refused_after_cutoff),
    ]
    for label, value in rows:
        click.echo(f"{label:<42} {value}")

"""`idp migration`: the move of the login identifier from member number to email (SPEC §7).

The work is ``idp.accounts.migration.LoginMigration``; these commands pace it,
show progress and sum it up.
"""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from idp.accounts.migration import LoginMigration
from idp.channels.services import Messages
from idp.cli.common import tenant_by_slug
from idp.extensions import db, find_service

group = AppGroup("migration", help="Email-as-login migration: invitations and follow-up.")


def _migration(tenant: str) -> LoginMigration:
    the_tenant = tenant_by_slug(tenant)
    if not the_tenant.logs_in_with_email:
        raise click.BadParameter(f"{the_tenant.slug} members sign in with their member number, "
                                 "not an email: there is nothing to migrate", param_hint="--tenant")
    return LoginMigration(db(), find_service(Messages), the_tenant)


@group.command("invite")
@click.option("--tenant", required=True, help="Tenant whose legacy accounts to invite (malakoff).")
@click.option("--batch", "batch_size", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Invitations queued and committed together.")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=10.0, show_default=True,
              help="At most this many emails per second.")
def invite(tenant: str, batch_size: int, rate: float) -> None:
    """Email every legacy account with an address on file that was not invited yet.

    Resumable and idempotent: an account is marked invited in the same transaction
    that queues its email, so running it again (after an interruption, or to catch
    accounts imported since) invites only those never invited, and nobody twice.
    Emails not sent at once stay in the queue for `idp outbox work`.
    """
    migration = _migration(tenant)
    total = migration.to_invite()
    if total == 0:
        click.echo("nothing to do: every legacy account with an email has been invited")
        _summary(migration, invited=0, sent=0)
        return
    invited = sent = 0
    messages = find_service(Messages)
    with click.progressbar(length=total, label=f"inviting {total} account(s)") as bar:
        for batch in migration.invite(batch_size):
            started = time.monotonic()
            sent += sum(1 for message in batch if messages.delivered(message))
            invited += len(batch)
            bar.update(len(batch))
            # Pace by the batch: never faster than --rate emails per second on average.
            time.sleep(max(0.0, len(batch) / rate - (time.monotonic() - started)))
    _summary(migration, invited=invited, sent=sent)


def _summary(migration: LoginMigration, *, invited: int, sent: int) -> None:
    status = migration.status()
    click.echo(f"invited now: {invited} (sent: {sent}, left in the queue for `idp outbox work`: "
               f"{invited - sent})")
    click.echo(f"invited in all: {status.invited}; still legacy: {status.legacy}; "
               f"legacy without an email on file (asked at their next sign-in): "
               f"{status.legacy_without_email}")


@group.command("status")
@click.option("--tenant", required=True, help="Tenant whose migration to report (malakoff).")
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

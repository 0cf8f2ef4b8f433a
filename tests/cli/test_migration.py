"""`idp migration invite|status`: invitations to move the login to the email (SPEC §7)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.channels.services import Messages
from tests.cli.test_accounts import assert_refused
from tests.conftest import free_port


def migration(runner, *args: str):
    return runner.invoke(args=["migration", *args])


@pytest.fixture
def legacy_accounts(make):
    """Five legacy accounts with an email on file, one without, one already migrated."""
    accounts = [make.account("malakoff", legacy_login=True) for _ in range(5)]
    make.account("malakoff", legacy_login=True, email=None)
    make.account("malakoff")
    return accounts


def invitations(db) -> Counter:
    db.rollback()
    return Counter(db.scalars(select(Message.recipient)
                              .where(Message.template == "migration_invitation")).all())


def test_invite_emails_each_legacy_account_once(runner, legacy_accounts, db):
    result = migration(runner, "invite", "--tenant", "malakoff", "--batch", "2", "--rate", "1000")
    assert result.exit_code == 0, result.output
    assert "invited now: 5 (sent: 5" in result.output
    assert "legacy without an email on file (asked at their next sign-in): 1" in result.output
    assert invitations(db) == Counter(account.email for account in legacy_accounts)
    body = db.scalar(select(Message.body_text).where(Message.recipient == legacy_accounts[0].email))
    assert legacy_accounts[0].member_number in body and "30 juin 2027" in body

    again = migration(runner, "invite", "--tenant", "malakoff")
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert sum(invitations(db).values()) == 5


def test_an_interrupted_run_finishes_without_duplicates(runner, legacy_accounts, db, monkeypatch):
    real_send_now = Messages.send_now
    calls = []

    def crash_on_the_third(self, message):
        calls.append(message.id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or the process killed
        return real_send_now(self, message)

    monkeypatch.setattr(Messages, "send_now", crash_on_the_third)
    interrupted = migration(runner, "invite", "--tenant", "malakoff", "--batch", "2", "--rate", "1000")
    assert interrupted.exit_code != 0
    # Two batches were committed: four invitations queued, the third and fourth not sent yet.
    assert sum(invitations(db).values()) == 4
    monkeypatch.setattr(Messages, "send_now", real_send_now)

    resumed = migration(runner, "invite", "--tenant", "malakoff", "--batch", "2", "--rate", "1000")
    assert resumed.exit_code == 0, resumed.output
    assert "invited now: 1" in resumed.output
    assert invitations(db) == Counter(account.email for account in legacy_accounts)
    # The emails left unsent by the interruption are still queued for the worker: not lost.
    assert db.scalar(select(func.count()).select_from(Message)
                     .where(Message.template == "migration_invitation", Message.status == "pending")) == 2


def test_the_rate_paces_the_batches(runner, legacy_accounts, monkeypatch):
    pauses = []
    monkeypatch.setattr("idp.cli.migration.time.sleep", pauses.append)
    result = migration(runner, "invite", "--tenant", "malakoff", "--batch", "2", "--rate", "0.5")
    assert result.exit_code == 0, result.output
    # Three batches (2, 2, 1) at 0.5 email/s: about 4, 4 and 2 seconds each.
    assert [round(pause) for pause in pauses] == [4, 4, 2]


def test_status_reports_what_support_follows(runner, legacy_accounts, db):
    migration(runner, "invite", "--tenant", "malakoff", "--rate", "1000")
    moved = db.get(Account, legacy_accounts[0].id)
    moved.legacy_login = False
    moved.login_migrated_at = func.now()
    db.commit()
    result = migration(runner, "status", "--tenant", "malakoff")
    assert result.exit_code == 0, result.output
    lines = {line[:42].strip(): line[42:].strip() for line in result.output.splitlines()}
    assert lines["still legacy (member number)"] == "5"
    assert lines["of which without an email on file"] == "1"
    assert lines["invited"] == "5"
    assert lines["invited, not migrated yet"] == "4"
    assert lines["migrated to email"] == "1"
    assert lines["failed sign-ins with a member number"] == "0"
    assert "starts 2026-10-01, cut-off 2027-06-30" in lines["phase"]


@pytest.mark.parametrize(("args", "message"), [
    (["invite", "--tenant", "miel"], "nothing to migrate"),
    (["invite", "--tenant", "nowhere"], "unknown tenant"),
    (["invite", "--tenant", "malakoff", "--batch", "0"], "--batch"),
    (["invite", "--tenant", "malakoff", "--rate", "0"], "--rate"),
    (["invite", "--tenant", "malakoff", "--rate", "fast"], "--rate"),
    (["invite", "--tenant", "malakoff", "--rate", "nan"], "is not a finite number"),
    (["status", "--tenant", "miel"], "nothing to migrate"),
    (["status"], "--tenant"),
])
def test_bad_options_are_refused_and_change_nothing(runner, legacy_accounts, db, args, message):
    assert_refused(migration(runner, *args), message)
    assert sum(invitations(db).values()) == 0


def test_each_invitation_is_in_the_language_of_its_member(runner, make, db):
    english = make.account("malakoff", legacy_login=True, locale="en")
    french = make.account("malakoff", legacy_login=True, locale="fr")
    never_said = make.account("malakoff", legacy_login=True)  # the tenant's default: French
    result = migration(runner, "invite", "--tenant", "malakoff", "--rate", "1000")
    assert result.exit_code == 0, result.output
    db.rollback()
    sent = {recipient: (subject, body) for recipient, subject, body in db.execute(
        select(Message.recipient, Message.subject, Message.body_text)
        .where(Message.template == "migration_invitation"))}
    subject, body = sent[english.email]
    assert subject == "From now on, sign in with your email address"
    assert "From 30 June 2027, you will no longer be able to sign in with your member number" in body
    for account in (french, never_said):
        subject, body = sent[account.email]
        assert subject == "Connectez-vous désormais avec votre adresse e-mail"
        assert "À partir du 30 juin 2027" in body


def test_invite_with_smtp_down_sums_up_instead_of_a_line_per_message(settings, app, legacy_accounts,
                                                                     db):
    """The installed command, as an operator runs it: SMTP unreachable, five invitations."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    environment.update({f"IDP_{key.upper()}": str(value) for key, value in settings.items()
                        if not isinstance(value, bool)})
    environment.update({"IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_HOST": "127.0.0.1",
                        "IDP_SMTP_PORT": str(free_port()), "IDP_SMTP_SECURITY": "none",
                        "IDP_MESSAGE_DELIVERY": "inline"})
    done = subprocess.run(
        [sys.executable, "-c", "from idp.cli import main; main()", "migration", "invite",
         "--tenant", "malakoff", "--rate", "1000"],
        env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "delayed" not in done.stderr, done.stderr  # no line per message
    assert "invited now: 5 (sent: 0, left in the queue for `idp outbox work`: 5)" in done.stdout
    summary = next(line for line in done.stdout.splitlines() if line.startswith("not sent yet"))
    assert summary.startswith("not sent yet: delayed 5 (retried by `idp outbox work`), failed 0, "
                              "expired 0; last error: ")
    assert sum(invitations(db).values()) == 5


def test_invite_dry_run_counts_and_changes_nothing(runner, legacy_accounts, db):
    result = migration(runner, "invite", "--tenant", "malakoff", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 5 account(s) would be invited now; nothing was changed or sent" in result.output
    assert sum(invitations(db).values()) == 0
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Account)
                     .where(Account.migration_invited_at.is_not(None))) == 0

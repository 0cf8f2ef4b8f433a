"""`idp audit`: operators read the audit log by tenant, account, date and tag (SPEC §11)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from idp import events
from idp.cli.audit import parse_since
from idp.db import utcnow

NOW = datetime(2026, 3, 14, 9, 0, 0)


@pytest.fixture
def log(db, make):
    """Three accounts' events over ten days, in both tenants."""
    jeanne = make.account("malakoff")
    paul = make.account("miel", member_number="20000001")
    other = make.account("malakoff")
    db.query(events.AuditEvent).delete()
    now = utcnow()
    for tag, tenant, account, age, data in [
        (events.LOGIN_FAILURE, "malakoff", jeanne, timedelta(days=10), {}),
        (events.LOGIN_SUCCESS, "malakoff", jeanne, timedelta(hours=2), {}),
        (events.OTP_SENT, "malakoff", jeanne, timedelta(hours=2), {"channel": "email"}),
        (events.LOGIN_SUCCESS, "miel", paul, timedelta(hours=1), {}),
        (events.PASSWORD_CHANGED, "malakoff", other, timedelta(minutes=5), {"reason": "reset"}),
    ]:
        db.add(events.AuditEvent(tag=tag, tenant=tenant, account_id=account.id, ip="192.0.2.7",
                                 data=data or None, created_at=now - age))
    db.commit()
    return {"jeanne": jeanne, "paul": paul, "other": other}


def audit(runner, *args: str):
    return runner.invoke(args=["audit", *args])


def tags(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [json.loads(line)["tag"] for line in result.output.splitlines()]


def test_lists_every_event_newest_first_as_a_table(runner, log):
    result = audit(runner)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "TAG", "TENANT", "ACCOUNT", "CLIENT", "IP", "DETAILS"]
    assert [line.split()[2] for line in lines[1:]] == [
        events.PASSWORD_CHANGED, events.LOGIN_SUCCESS, events.OTP_SENT, events.LOGIN_SUCCESS,
        events.LOGIN_FAILURE]
    assert "reason=reset" in lines[1]


def test_json_lines_carry_every_field(runner, log):
    result = audit(runner, "--json", "--tag", events.OTP_SENT)
    (line,) = result.output.splitlines()
    record = json.loads(line)
    assert record["account_id"] == log["jeanne"].id
    assert record["tenant"] == "malakoff" and record["ip"] == "192.0.2.7"
    assert record["data"] == {"channel": "email"}
    assert record["time"].endswith("Z")


def test_filters_combine(runner, log):
    assert tags(audit(runner, "--json", "--tenant", "miel")) == [events.LOGIN_SUCCESS]
    jeanne = log["jeanne"]
    assert tags(audit(runner, "--json", "--account", jeanne.id)) == [
        events.OTP_SENT, events.LOGIN_SUCCESS, events.LOGIN_FAILURE]
    # By identifier: the email in Malakoff, the member number in Miel.
    assert len(tags(audit(runner, "--json", "--account", jeanne.email.upper()))) == 3
    assert tags(audit(runner, "--json", "--account", "20000001", "--tenant", "miel")) == [
        events.LOGIN_SUCCESS]
    assert tags(audit(runner, "--json", "--account", jeanne.id, "--since", "7d")) == [
        events.OTP_SENT, events.LOGIN_SUCCESS]
    assert tags(audit(runner, "--json", "--since", "90m")) == [
        events.PASSWORD_CHANGED, events.LOGIN_SUCCESS]
    # A tag selects the tags under it, whole parts only.
    assert tags(audit(runner, "--json", "--tag", "account:login")) == [
        events.LOGIN_SUCCESS, events.LOGIN_SUCCESS, events.LOGIN_FAILURE]
    assert tags(audit(runner, "--json", "--tag", "mfa", "--tag", events.PASSWORD_CHANGED)) == [
        events.PASSWORD_CHANGED, events.OTP_SENT]
    assert len(tags(audit(runner, "--json", "--limit", "2"))) == 2


def test_nothing_found_says_so(runner, log):
    result = audit(runner, "--tag", "admin")
    assert result.exit_code == 0 and result.output == "no events\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "neither an ISO date"),
    (["--since", "7w"], "neither an ISO date"),
    (["--tenant", "nowhere"], "unknown tenant 'nowhere'"),
    (["--tag", "Account Login"], "is not an event tag"),
    (["--tag", "account:%"], "is not an event tag"),
    # Whole parts only, of tags the provider records.
    (["--tag", "account:log"], "no event tag is or starts with 'account:log' (after account: "
                               "activate, create,"),
    (["--tag", "acount"], "no event tag is or starts with 'acount' (tags start with account, "
                          "admin, mfa, oidc, registration)"),
    (["--tag", "account:login:succes"], "(after account:login: failure, legacy-failure,"),
    (["--tag", f"{events.LOGIN_SUCCESS}:x"], "(after account:login: failure,"),
    (["--account", "nobody@example.org"], "no account with the id or identifier"),
    (["--limit", "0"], "--limit"),
    (["--colour"], "No such option"),
])
def test_bad_flags_are_refused_clearly(runner, log, args, message):
    result = audit(runner, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("tag", sorted(events.TAGS))
def test_every_tag_the_provider_records_and_each_of_its_starts_are_accepted(runner, tag):
    parts = tag.split(":")
    for start in (":".join(parts[:length]) for length in range(1, len(parts) + 1)):
        result = audit(runner, "--tag", start)
        assert result.exit_code == 0, result.output


def test_an_identifier_of_both_tenants_needs_a_tenant(runner, log, make):
    make.account("malakoff", member_number="20000001", email="legacy@example.org")
    result = audit(runner, "--account", "20000001")
    assert result.exit_code == 2
    assert "several tenants (malakoff, miel): add --tenant" in result.output
    assert tags(audit(runner, "--json", "--account", "20000001", "--tenant", "miel")) == [
        events.LOGIN_SUCCESS]


@pytest.mark.parametrize(("value", "expected"), [
    ("7d", NOW - timedelta(days=7)),
    ("24h", NOW - timedelta(hours=24)),
    ("30m", NOW - timedelta(minutes=30)),
    ("2026-03-01", datetime(2026, 3, 1)),
    ("2026-03-01T08:30", datetime(2026, 3, 1, 8, 30)),
    ("2026-03-01T08:30Z", datetime(2026, 3, 1, 8, 30)),
    ("2026-03-01T08:30+01:00", datetime(2026, 3, 1, 7, 30)),
])
def test_since_reads_dates_times_and_durations(value, expected):
    assert parse_since(value, NOW) == expected

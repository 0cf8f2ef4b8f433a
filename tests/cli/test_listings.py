"""What every listing command shares: `--json` (one object per line, the fields the README's
"JSON output" names), `--tenant` from IDP_TENANT, and the commands that ask before they act."""

from __future__ import annotations

import json
from datetime import datetime

import click
import pytest
from sqlalchemy import create_engine, select

from idp import create_app, events, schema
from idp.accounts.models import RegistrationRequest
from idp.channels.models import Message
from idp.cli import GROUPS, main
from idp.registry.models import Member
from tests.cli.test_members import row, write_csv
from tests.conftest import IdpCliRunner

# The shape of each listing's JSON lines (README, "JSON output"): these keys, in this order.
SHAPES = {
    ("accounts", "list"): ["id", "tenant", "email", "member_number", "legacy_login", "status",
                           "created_at"],
    ("clients", "list"): ["client_id", "tenant", "name", "auth_method", "first_party",
                          "pkce_required", "redirect_uris", "scopes", "created_at"],
    ("review", "list"): ["id", "tenant", "reason", "differences", "created_at"],
    ("outbox", "list"): ["id", "tenant", "channel", "template", "recipient", "status", "attempts",
                         "created_at", "next_attempt_at", "sent_at", "last_error"],
    ("keys", "list"): ["kid", "alg", "state", "created_at", "activated_at", "retired_at", "problem"],
    ("audit",): ["id", "time", "tag", "tenant", "account_id", "client_id", "ip", "user_agent",
                 "data"],
}


def _commands() -> dict[tuple[str, ...], click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    for name in GROUPS:
        command = main.get_command(None, name)  # type: ignore[arg-type]
        if isinstance(command, click.Group):
            found.update({(name, sub): command.commands[sub] for sub in command.commands})
        elif command is not None:
            found[(name,)] = command
    return found


def test_every_listing_command_has_json():
    listings = {path for path, command in _commands().items()
                if path[-1] == "list" or path == ("audit",)}
    assert listings == set(SHAPES)
    for path in listings:
        assert "as_json" in {param.name for param in _commands()[path].params}, path


def test_every_tenant_option_reads_idp_tenant():
    with_tenant = {path: param for path, command in _commands().items()
                   for param in command.params if param.name == "tenant"}
    assert len(with_tenant) >= 15
    assert {path: param.envvar for path, param in with_tenant.items()} == \
        dict.fromkeys(with_tenant, "IDP_TENANT")


def _message(db, *, status: str, error: str | None) -> Message:
    now = datetime(2026, 3, 14, 9, 0)
    message = Message(tenant="malakoff", channel="email", template="otp_code",
                      recipient="jeanne@example.org", subject="Votre code", body_text="Code : 482913",
                      body_html=None, status=status, attempts=2, last_error=error, created_at=now,
                      next_attempt_at=now, sent_at=now if status == "sent" else None)
    db.add(message)
    db.commit()
    return message


@pytest.fixture
def everything_listed(runner, make, db, tmp_path, app):
    make.account("malakoff")
    make.client("malakoff")
    imported = runner.invoke(args=["members", "import", str(write_csv(tmp_path, row("20000001"))),
                                   "--tenant", "miel"])
    assert imported.exit_code == 0, imported.output
    db.add(RegistrationRequest(
        tenant="miel", member_id=db.scalar(select(Member.id)), reason="near_miss",
        differences=["last_name"], submitted={"last_name": "Martine", "first_name": "Jeanne",
                                              "birth_date": "1958-03-14", "email": None,
                                              "mobile": None}))
    db.commit()
    _message(db, status="sent", error="SMTP relay:587 answered 451")
    events.record_event(db, events.ACCOUNT_CREATED, tenant="malakoff")
    db.commit()


@pytest.mark.parametrize("path", SHAPES, ids=" ".join)
def test_each_listing_prints_one_json_object_per_line_in_its_documented_shape(runner,
                                                                            everything_listed,
                                                                            path):
    tenant = {"accounts": "malakoff", "clients": "malakoff", "review": "miel"}
    args = [*path, "--json", *(["--tenant", tenant[path[0]]] if path[0] in tenant else [])]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert records
    for record in records:
        assert list(record) == SHAPES[path]


def test_the_tenant_may_come_from_the_environment(runner, make):
    malakoff = make.account("malakoff")
    miel = make.account("miel")
    result = runner.invoke(args=["accounts", "list", "--json"], env={"IDP_TENANT": "miel"})
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [miel.id]
    given = runner.invoke(args=["accounts", "list", "--json", "--tenant", "malakoff"],
                          env={"IDP_TENANT": "miel"})
    assert [json.loads(line)["id"] for line in given.output.splitlines()] == [malakoff.id]
    unknown = runner.invoke(args=["accounts", "list"], env={"IDP_TENANT": "acme"})
    assert unknown.exit_code != 0 and "unknown tenant 'acme'" in unknown.output


def test_outbox_list_shows_no_error_for_a_message_since_sent(runner, db):
    sent = _message(db, status="sent", error="SMTP relay:587 answered 451")
    pending = _message(db, status="pending", error="SMTP relay:587 timed out")
    table = runner.invoke(args=["outbox", "list"])
    assert table.exit_code == 0, table.output
    assert "answered 451" not in table.output
    assert "timed out" in table.output
    records = {record["id"]: record for record in map(
        json.loads, runner.invoke(args=["outbox", "list", "--json"]).output.splitlines())}
    assert records[sent.id]["last_error"] is None
    assert records[pending.id]["last_error"] == "SMTP relay:587 timed out"
    assert "482913" not in table.output and "jeanne@example.org" not in table.output


@pytest.fixture
def own_database(settings, tmp_path):
    """A SQLite database of the test's own, at the latest schema: downgrades are real here."""
    url = f"sqlite:///{tmp_path / 'own.sqlite3'}"
    engine = create_engine(url)
    schema.upgrade(engine)
    app = create_app({**settings, "database_url": url})
    yield IdpCliRunner(app), engine
    app.extensions["idp"].database.engine.dispose()
    engine.dispose()


def test_db_downgrade_asks_first_and_changes_nothing_unless_confirmed(own_database):
    runner, engine = own_database
    latest = schema.current(engine)
    for answer in ("n\n", ""):
        refused = runner.invoke(args=["db", "downgrade", "base"], input=answer)
        assert refused.exit_code == 1, refused.output
        assert f"Downgrade the database from {latest} to base?" in refused.output
        assert schema.current(engine) == latest
    confirmed = runner.invoke(args=["db", "downgrade", "-1"], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert schema.current(engine) not in (latest, None)
    scripted = runner.invoke(args=["db", "downgrade", "--yes", "base"])
    assert scripted.exit_code == 0, scripted.output
    assert "?" not in scripted.output
    assert schema.current(engine) is None

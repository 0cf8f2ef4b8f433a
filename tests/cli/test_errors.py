"""The `idp` command's one error boundary: every failure is one line saying what to do, a
non-zero exit, no traceback, and nothing changed (SPEC §11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from idp import create_app, events
from idp.accounts.models import RegistrationRequest
from idp.cli import main
from idp.oidc.models import Client
from idp.registry.models import Member
from tests.cli.test_members import HEADER, row, write_csv
from tests.conftest import DATABASE_URL, ROOT, IdpCliRunner, free_port

ESCAPE = "\x1b"


def assert_one_line_failure(result, *words: str) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


def run_on(settings, args, input=None, **overrides):
    app = create_app({**settings, **overrides})
    try:
        return IdpCliRunner(app).invoke(args=args, input=input)
    finally:
        app.extensions["idp"].database.engine.dispose()


def _absent_database() -> str:
    if not DATABASE_URL.startswith("postgresql"):
        pytest.skip("an absent database needs a PostgreSQL server (IDP_TEST_DATABASE_URL)")
    url = make_url(DATABASE_URL).set(database=f"idp_absent_{uuid.uuid4().hex[:8]}")
    return url.render_as_string(hide_password=False)


def _empty_sqlite(tmp_path) -> str:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    return f"sqlite:///{path}"


DATABASES = {
    "schema missing": (_empty_sqlite, "has no schema, or an older one: run `idp db upgrade`"),
    "sqlite file absent": (lambda tmp_path: f"sqlite:///{tmp_path / 'absent.sqlite3'}",
                           "does not exist: run `idp db upgrade` to create it"),
    "postgresql unreachable": (
        lambda _tmp: f"postgresql+psycopg://idp@127.0.0.1:{free_port()}/idp", "cannot reach"),
    "database absent": (lambda _tmp: _absent_database(), "does not exist"),
    "bad sqlite path": (lambda tmp_path: f"sqlite:///{tmp_path / 'missing' / 'dir' / 'idp.sqlite3'}",
                        "cannot open the SQLite database"),
}


@pytest.mark.parametrize("case", DATABASES, ids=DATABASES)
@pytest.mark.parametrize("args", [["accounts", "list", "--tenant", "miel"],
                                  ["clients", "list", "--tenant", "malakoff"],
                                  ["audit"], ["review", "list", "--tenant", "miel"]],
                         ids=lambda args: " ".join(args[:2]))
def test_a_database_that_cannot_serve_is_named_in_one_line(settings, tmp_path, case, args):
    url, words = DATABASES[case]
    result = run_on(settings, args, database_url=url(tmp_path))
    line = assert_one_line_failure(result, words)
    assert "password" not in line.lower() or "check the user and password" in line


# Every command that reads or writes the database, with arguments it would accept.
EVERY_DATABASE_COMMAND = [
    (["accounts", "create", "--tenant", "miel", "--given-name", "Jeanne", "--family-name", "Martin",
      "--member-number", "12345678"], "Rocher-Vert-1956!\n"),
    (["accounts", "list", "--tenant", "malakoff", "--json"], None),
    (["accounts", "set-password", "--tenant", "miel", "12345678"], "Rocher-Vert-1956!\n"),
    (["accounts", "set-contact", "--tenant", "miel", "--email", "jeanne@example.org", "12345678"],
     None),
    (["members", "import", "--tenant", "miel", "{csv}"], None),
    (["review", "show", "--tenant", "miel", "1"], None),
    (["review", "approve", "--tenant", "miel", "1"], None),
    (["review", "reject", "--tenant", "miel", "--reason", "no such member", "1"], None),
    (["clients", "add", "--tenant", "miel", "--name", "Portail",
      "--redirect-uri", "https://rp.example.org/callback"], None),
    (["clients", "show", "miel-portal"], None),
    (["clients", "update", "miel-portal", "--pkce"], None),
    (["clients", "remove", "--yes", "miel-portal"], None),
    (["migration", "invite", "--tenant", "malakoff"], None),
    (["migration", "status", "--tenant", "malakoff"], None),
    (["outbox", "work", "--once"], None),
    (["outbox", "list", "--json"], None),
    (["outbox", "retry", "1"], None),
    (["outbox", "retry", "--all-failed"], None),
]


@pytest.mark.parametrize("case", DATABASES, ids=DATABASES)
@pytest.mark.parametrize(("args", "stdin"), EVERY_DATABASE_COMMAND,
                         ids=[" ".join(args[:2]) + (" " + args[2] if args[2].startswith("--") and
                                                    args[1] in ("retry",) else "")
                              for args, _stdin in EVERY_DATABASE_COMMAND])
def test_every_command_names_a_database_that_cannot_serve_in_one_line(settings, tmp_path, case,
                                                                      args, stdin):
    url, words = DATABASES[case]
    csv = write_csv(tmp_path, row("20000001"))
    result = run_on(settings, [str(csv) if arg == "{csv}" else arg for arg in args],
                    database_url=url(tmp_path), input=stdin)
    assert_one_line_failure(result, words)


# Every command that only reads the database, and those of `idp db` but upgrade.
READING = [["accounts", "list", "--tenant", "miel"], ["clients", "list", "--tenant", "miel"],
           ["audit"], ["review", "list", "--tenant", "miel"], ["outbox", "list"],
           ["migration", "status", "--tenant", "malakoff"], ["db", "current"],
           ["db", "downgrade", "base", "--yes"]]


@pytest.mark.parametrize("args", READING, ids=lambda args: " ".join(args[:2]))
def test_an_absent_sqlite_database_is_named_and_not_made(settings, tmp_path, args):
    path = tmp_path / "idp.sqlite3"

    result = run_on(settings, args, database_url=f"sqlite:///{path}")

    assert_one_line_failure(result, f"the SQLite database {path} does not exist: run "
                                    "`idp db upgrade` to create it")
    assert list(tmp_path.glob("idp.sqlite3*")) == []
    created = run_on(settings, ["db", "upgrade"], database_url=f"sqlite:///{path}")
    assert created.exit_code == 0, created.output
    assert path.exists()


@pytest.mark.parametrize("args", [["db", "current"], ["db", "upgrade"]], ids=" ".join)
def test_db_commands_name_a_database_they_cannot_reach_in_one_line(settings, tmp_path, args):
    for case in ("postgresql unreachable", "database absent", "bad sqlite path"):
        url, words = DATABASES[case]
        assert_one_line_failure(run_on(settings, args, database_url=url(tmp_path)), words)


@pytest.mark.parametrize(("args", "words"), [
    (["db", "upgrade", "nosuchrev"], "Can't locate revision identified by 'nosuchrev'"),
    (["db", "downgrade", "nosuchrev", "--yes"], "Can't locate revision identified by 'nosuchrev'"),
    (["db", "upgrade", " "], "name a revision"),
])
def test_an_unknown_revision_is_named_and_changes_nothing(settings, tmp_path, args, words):
    url = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    assert run_on(settings, ["db", "upgrade"], database_url=url).exit_code == 0
    before = run_on(settings, ["db", "current"], database_url=url).output

    line = assert_one_line_failure(run_on(settings, args, database_url=url), words)

    assert "unexpected error" not in line
    assert run_on(settings, ["db", "current"], database_url=url).output == before


# The `idp` a shell runs: the application built from the environment, no test runner.
INSTALLED = [sys.executable, "-c", "from idp.cli import main; main()"]


def installed_environment(settings) -> dict[str, str]:
    """The environment of the installed command, for these settings."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    environment.update({f"IDP_{key.upper()}": str(value) for key, value in settings.items()
                        if not isinstance(value, bool)})
    return environment


def test_the_installed_command_says_it_in_one_line_too(settings, tmp_path):
    environment = installed_environment(settings)
    for case, (url, words) in DATABASES.items():
        if case == "database absent" and not DATABASE_URL.startswith("postgresql"):
            continue
        environment["IDP_DATABASE_URL"] = url(tmp_path)
        done = subprocess.run(  # noqa: S603 - the idp command of this environment
            [*INSTALLED, "accounts", "list", "--tenant", "miel"], env=environment,
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith("Error: ") and words in done.stderr


def test_a_listing_whose_reader_goes_away_stops_without_a_word(app, settings):
    """`idp audit | head -1`: the pipe closes early; the command ends as Unix tools do."""
    session = app.extensions["idp"].database.session()
    for _ in range(2000):  # a listing far longer than a pipe holds
        events.record_event(session, events.ACCOUNT_CREATED, tenant="miel", user_agent="x" * 300)
    session.commit()
    session.close()
    for args in (["audit", "--limit", "2000"], ["audit", "--limit", "2000", "--json"]):
        listing = subprocess.Popen(  # noqa: S603 - the idp command of this environment
            [*INSTALLED, *args], env=installed_environment(settings), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        first = listing.stdout.readline()
        listing.stdout.close()
        said = listing.stderr.read()
        listing.stderr.close()
        listing.wait(timeout=60)

        assert first.startswith(("TIME (UTC)", '{"id"'))
        assert said == ""


def _binary_settings_file(tmp_path):
    path = tmp_path / "idp.toml"
    path.write_bytes(bytes(range(256)) * 16)
    return str(path)


BAD_ENVIRONMENTS = {
    "database of another kind": ({"IDP_DATABASE_URL": lambda _tmp: "mysql://idp:s3cret@db/idp"},
                                 ("IDP_DATABASE_URL", "PostgreSQL through psycopg", "SQLite")),
    "binary settings file": ({"IDP_CONFIG_FILE": _binary_settings_file},
                             ("IDP_CONFIG_FILE", "not UTF-8")),
    "twenty-digit lifetime": ({"IDP_ID_TOKEN_TTL": lambda _tmp: "9" * 20},
                              ("IDP_ID_TOKEN_TTL", "at most 2147483647")),
    "twenty-digit pre-publication": ({"IDP_KEY_PREPUBLISH_SECONDS": lambda _tmp: "9" * 20},
                                     ("IDP_KEY_PREPUBLISH_SECONDS", "at most 2147483647")),
    "argon2 lanes libargon2 refuses": (
        {"IDP_ARGON2_PARALLELISM": lambda _tmp: str(2**24), "IDP_ARGON2_MEMORY_COST": lambda _tmp:
         str(2**27)}, ("IDP_ARGON2_PARALLELISM", "libargon2 cannot hash")),
}


@pytest.mark.parametrize("case", BAD_ENVIRONMENTS, ids=BAD_ENVIRONMENTS)
@pytest.mark.parametrize("args", [["keys", "rotate", "--force"], ["audit"]], ids=" ".join)
def test_a_setting_the_provider_cannot_run_with_is_named_in_one_line(monkeypatch, tmp_path, case,
                                                                     args):
    """The command built from the environment, as a shell runs it: nothing is read or written."""
    for name in [name for name in os.environ if name.startswith("IDP_")]:
        monkeypatch.delenv(name)
    database = tmp_path / "idp.sqlite3"
    monkeypatch.setenv("IDP_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("IDP_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("IDP_TENANTS_DIR", str(ROOT / "config" / "tenants"))
    variables, words = BAD_ENVIRONMENTS[case]
    for name, value in variables.items():
        monkeypatch.setenv(name, value(tmp_path))

    result = CliRunner().invoke(main, args)

    line = assert_one_line_failure(result, "configuration: ", *words)
    assert result.exit_code == 1  # as for any setting the provider cannot run with
    assert "s3cret" not in line
    assert not database.exists() and not (tmp_path / "keys").exists()


def test_a_keys_directory_that_is_a_file_is_named(settings, tmp_path):
    not_a_directory = tmp_path / "keys-file"
    not_a_directory.write_text("")
    for args in (["keys", "list"], ["keys", "generate"], ["keys", "rotate"]):
        result = run_on(settings, args, keys_dir=str(not_a_directory))
        assert_one_line_failure(result, "is not a directory", "IDP_KEYS_DIR")
    assert not_a_directory.read_text() == ""


def _cr_only(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(f"{HEADER}\r{row('20000001')}\r".encode())
    return path, ("CR alone",)


def _huge_header(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_bytes(b"member_number;" * 10_000 + b"\n" + row("20000001").encode() + b"\n")
    return path, ("line 1", "longer than")


def _binary(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(256)) * 64)
    return path, ("line 1", "NUL")


def _nul_in_a_cell(tmp_path):
    path = write_csv(tmp_path, row("20000001"), row("20000002", last_name="Mar\x00tin"),
                     row("20000003"))
    return path, ("line 3", "NUL")


@pytest.mark.parametrize("make_file", [_cr_only, _huge_header, _binary, _nul_in_a_cell],
                         ids=["CR only", "huge header", "binary", "NUL in a cell"])
def test_a_member_file_that_is_not_csv_text_is_refused_in_one_line(runner, db, tmp_path,
                                                                  make_file):
    path, words = make_file(tmp_path)
    result = runner.invoke(args=["members", "import", str(path), "--tenant", "miel"])
    assert_one_line_failure(result, "nothing was imported", *words)
    assert db.scalar(select(func.count()).select_from(Member)) == 0


def test_a_deeply_nested_jwks_is_refused(runner, db, tmp_path):
    jwks = tmp_path / "deep.json"
    jwks.write_text('{"keys": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = runner.invoke(args=["clients", "add", "--tenant", "malakoff", "--name", "Portail",
                                 "--redirect-uri", "https://rp.example.org/callback",
                                 "--auth-method", "private_key_jwt", "--jwks", str(jwks)])
    assert_one_line_failure(result, "--jwks", "nested too deeply")
    assert db.scalar(select(func.count()).select_from(Client)) == 0


@pytest.mark.parametrize("command", ["show", "approve", "reject"])
@pytest.mark.parametrize("request_id", [str(2**31), str(2**63), "99999999999999999999999"])
def test_a_review_id_beyond_the_database_integers_is_refused(runner, command, request_id):
    extra = ["--reason", "test"] if command == "reject" else []
    result = runner.invoke(args=["review", command, "--tenant", "miel", *extra, request_id])
    assert_one_line_failure(result, "REQUEST_ID")


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                   "2026-13-01", "99999d"])
def test_audit_since_out_of_range_is_refused(runner, since):
    result = runner.invoke(args=["audit", "--since", since])
    if since == "99999d":  # 273 years back: a valid question, answered
        assert result.exit_code == 0, result.output
        return
    assert_one_line_failure(result, "--since")


def test_an_unexpected_failure_is_one_generic_line_and_its_detail_only_in_the_debug_log(
        runner, monkeypatch):
    def broken(*_args, **_kwargs):
        raise KeyError("detail-of-the-failure")

    monkeypatch.setattr("idp.cli.audit.parse_since", broken)
    result = runner.invoke(args=["audit", "--since", "7d"])
    line = assert_one_line_failure(result, "unexpected error (KeyError)", "--debug")
    assert "detail-of-the-failure" not in line

    debug = runner.invoke(args=["--debug", "audit", "--since", "7d"])
    assert debug.exit_code != 0
    assert "detail-of-the-failure" in debug.output  # in the JSON log line, with its traceback


def test_usage_errors_are_one_line_too(runner):
    result = runner.invoke(args=["accounts", "list"])
    assert result.exit_code == 2
    assert_one_line_failure(result, "--tenant", "accounts list --help")


HOSTILE = "Jean\x1b[2J\x1b]0;pwned\x07\u202eNIAM\x9b31m"


def _events(app, **fields):
    session = app.extensions["idp"].database.session()
    events.record_event(session, events.ACCOUNT_CREATED, tenant="miel", **fields)
    session.commit()
    session.close()


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_audit_escapes_control_characters_of_member_supplied_text(runner, app, as_json):
    _events(app, user_agent=HOSTILE, ip="203.0.113.9", name=HOSTILE)
    result = runner.invoke(args=["audit", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    for char in (ESCAPE, "\x07", "\u202e", "\x9b"):
        assert char not in result.output
    if as_json:
        event = json.loads(result.output.splitlines()[0])
        assert event["user_agent"] == HOSTILE and event["data"]["name"] == HOSTILE
    else:
        assert "\\x1b[2J" in result.output


def test_review_show_escapes_control_characters_of_what_the_member_typed(runner, db, tmp_path):
    imported = runner.invoke(args=["members", "import", str(write_csv(tmp_path, row("20000001"))),
                                   "--tenant", "miel"])
    assert imported.exit_code == 0, imported.output
    request = RegistrationRequest(
        tenant="miel", member_id=db.scalar(select(Member.id)), reason="near_miss",
        differences=["last_name"], submitted={
            "last_name": HOSTILE, "first_name": "Jeanne", "birth_date": "1958-03-14",
            "email": f"jeanne{ESCAPE}[8m@example.org", "mobile": None})
    db.add(request)
    db.commit()
    result = runner.invoke(args=["review", "show", "--tenant", "miel", str(request.id)])
    assert result.exit_code == 0, result.output
    for char in (ESCAPE, "\x07", "\u202e", "\x9b"):
        assert char not in result.output
    assert "Jean\\x1b[2J" in result.output

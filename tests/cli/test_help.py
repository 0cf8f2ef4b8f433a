"""`idp --help` and `idp <group> --help` answer without loading the application: the groups are
imported when named, and their commands import Flask, SQLAlchemy and the models when they run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idp.cli import GROUPS, main
from idp.cli.accounts import BIRTH_DATE_LAYOUT
from idp.cli.clients import SCOPES_HELP
from idp.identifiers import YYYY_MM_DD
from idp.oidc.models import SUPPORTED_SCOPES

# What answering --help must not import: the web framework, the ORM, the application, models.
HEAVY = ("flask", "sqlalchemy", "werkzeug", "alembic", "authlib", "joserfc", "idp.app",
         "idp.extensions", "idp.accounts.models", "idp.channels.models", "idp.oidc.models")

PROBE = """
import json, sys
from idp.cli import main
try:
    main(sys.argv[1:], prog_name="idp")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _help_in_a_fresh_process(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    *shown, last = done.stdout.splitlines()
    probe = json.loads(last)
    assert probe["code"] == 0, done.stdout
    return "\n".join(shown), set(probe["modules"])


@pytest.mark.parametrize("args", [["--help"], *([group, "--help"] for group in sorted(GROUPS))],
                         ids=lambda args: " ".join(args))
def test_help_loads_neither_flask_nor_sqlalchemy_nor_the_application(args):
    shown, modules = _help_in_a_fresh_process(*args)
    assert "Usage: idp" in shown
    loaded = sorted(name for name in modules
                    if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY))
    assert loaded == []


def test_the_root_help_lists_every_group_with_its_own_summary():
    shown, _modules = _help_in_a_fresh_process("--help")
    for name, (_module, summary) in GROUPS.items():
        assert name in shown
        group = main.get_command(None, name)  # type: ignore[arg-type]
        assert group is not None and group.name == name
        # The summary is the group's own help, cut at its first sentence.
        assert " ".join((group.help or "").split()).startswith(summary.removesuffix("."))
    assert " ".join(shown.split()).count("Manage the relying parties (OIDC clients) registered "
                                         "with each tenant.") == 1


def test_what_the_options_spell_out_matches_the_application():
    assert ", ".join(SUPPORTED_SCOPES) == SCOPES_HELP
    assert BIRTH_DATE_LAYOUT == YYYY_MM_DD


@pytest.mark.parametrize("args", [["clients", "add", "--help"], ["keys", "generate", "--help"],
                                  ["outbox", "list", "--help"], ["accounts", "list", "--help"],
                                  ["members", "import", "--help"]],
                         ids=lambda args: " ".join(args[:2]))
def test_a_command_help_shows_the_choices_the_application_defines(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    expected = {"clients": "client_secret_basic|client_secret_post|private_key_jwt|none",
                "keys": "RS256|ES256", "outbox": "pending|sent|failed|expired",
                "accounts": "pending|active|disabled", "members": "member_number  8 digits"}[args[0]]
    assert expected in result.output

"""The files around the code: CI script, README, compose file, image and gunicorn settings.

They are not run by the suite (no Docker engine in CI), so these checks catch
the mistakes that would otherwise surface only on a fresh clone or a deploy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import runpy
from pathlib import Path

import pytest

from idp.config import Settings

ROOT = Path(__file__).resolve().parent.parent
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/idp demo"
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"


def _section(markdown: str, heading: str) -> str:
    """The text under a level-2 heading, up to the next one."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_ci_run_is_an_executable_strict_bash_script():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable (chmod +x)"
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/bash")
    commands = [line for line in lines[1:] if line.strip() and not line.lstrip().startswith("#")]
    assert commands[0] == "set -euo pipefail", "strict mode must come before any command"


def test_ci_run_runs_the_readme_test_command_then_ruff():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q -e '.[test]'",
        ".venv/bin/pytest",
        ".venv/bin/ruff check",
    ]
    found = [re.search(rf"^[ \t]*{re.escape(step)}", script, re.M) for step in steps]
    assert None not in found, dict(zip(steps, found, strict=True))
    positions = [match.start() for match in found]
    assert positions == sorted(positions), "venv, install, pytest, then ruff"


def test_readme_quick_start_gives_the_two_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = _section(readme, "Quick start")
    assert f"```sh\n{RUN_COMMAND}\n```" in quick_start
    assert f"```sh\n{TEST_COMMAND}\n```" in quick_start
    assert readme.index("## Quick start") == readme.index("\n## ") + 1, "Quick start comes first"


def test_readme_documents_every_setting():
    configuration = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Configuration")
    documented = set(re.findall(r"^\| `(IDP_[A-Z0-9_]+)` \|", configuration, re.M))
    expected = {f"IDP_{field.name.upper()}" for field in dataclasses.fields(Settings)}
    expected.discard("IDP_EXTRA")  # not an environment variable
    assert expected - documented == set(), "settings missing from the README's table"
    assert documented - expected == set(), "README documents settings that do not exist"


def _compose_keys(text: str, indent: int) -> list[str]:
    return re.findall(rf"^ {{{indent}}}([A-Za-z0-9_.-]+):", text, re.M)


def _compose_block(text: str, key: str, indent: int) -> str:
    """The lines nested under `key:` at `indent` spaces (a structural look, not a YAML parser)."""
    match = re.search(
        rf"^ {{{indent}}}{re.escape(key)}:.*\n((?: {{{indent + 1},}}.*\n|\s*\n)*)", text, re.M
    )
    assert match, f"no '{key}:' at indent {indent}"
    return match.group(1)


def test_compose_file_has_the_stack_and_demands_a_secret():
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "\t" not in text, "YAML forbids tabs for indentation"
    indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()}
    assert all(indent % 2 == 0 for indent in indents), "two-space indentation throughout"
    assert {"services", "volumes"} <= set(_compose_keys(text, 0))

    services = _compose_block(text, "services", 0)
    assert set(_compose_keys(services, 2)) == {"postgres", "redis", "mailcatcher", "idp", "worker"}
    for name in ("postgres", "redis"):
        assert "healthcheck:" in _compose_block(services, name, 2)

    idp = _compose_block(services, "idp", 2)
    assert re.search(r"^ {4}build: \.$", idp, re.M)
    environment = _compose_block(text, "x-idp-environment", 0)
    assert "IDP_SECRET_KEY: ${IDP_SECRET_KEY:?" in environment, "compose must stop without a secret key"
    assert "IDP_ENV: production" in environment
    worker = _compose_block(services, "worker", 2)
    assert "environment: *idp-environment" in idp and "environment: *idp-environment" in worker
    assert '"outbox", "work"' in worker
    depends_on = _compose_block(idp, "depends_on", 4)
    for name in ("postgres", "redis"):
        assert "condition: service_healthy" in _compose_block(depends_on, name, 6)
    assert "idp-keys:/app/keys" in idp
    assert "idp-keys:" in _compose_block(text, "volumes", 0)


def test_image_runs_unprivileged_and_never_carries_keys():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users, "the image must name its user"
    assert users[-1] not in ("root", "0"), "the service must not run as root"
    assert "config/gunicorn.conf.py" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "keys" in ignored, "private keys must stay out of the build context"
    assert "README.md" not in ignored, "pyproject.toml names README.md: the build needs it"


@pytest.mark.parametrize(
    "user_agent",
    ["plain/1.0", 'quote " inside', "backslash \\ inside", "control \x01 and newline \n"],
)
def test_gunicorn_access_log_lines_are_json(user_agent):
    settings = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert settings["bind"] == "0.0.0.0:8000"
    atoms = settings["logger_class"].atoms_wrapper_class(
        {
            "t": "[23/Nov/2026:12:00:00 +0000]",
            "h": "192.0.2.1",
            "m": "GET",
            "U": "/miel/authorize",
            "s": "302",
            "b": "0",
            "M": 3,
            "a": user_agent,
        }
    )
    line = settings["access_log_format"] % atoms
    record = json.loads(line)
    assert record["user_agent"] == user_agent
    assert record["status"] == 302
    assert record["forwarded_for"] == "-"
    # The query string can carry a login_hint: neither %(q)s nor the request line %(r)s.
    assert "%(q)s" not in settings["access_log_format"]
    assert "%(r)s" not in settings["access_log_format"]

"""The screenshot command: one PNG per page and width, or a clear message when Chromium is missing."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMAND = [sys.executable, "-m", "tests.browser.screenshots"]


def png_width(path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">I", header[16:20])[0]


@pytest.mark.browser
def test_screenshots_of_every_page_of_a_tenant(tmp_path):
    done = subprocess.run([*COMMAND, "--out", str(tmp_path), "--tenant", "miel", "--width", "360"],  # noqa: S603
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    names = {path.name for path in tmp_path.iterdir()}
    for page in ("portal-home", "register-identity-error", "register-contact", "register-code", "activate",
                 "welcome", "sign-in", "sign-in-error", "code-choice", "code-entry", "code-error", "terms",
                 "account", "preferences", "account-preferences-changed", "change-password",
                 "change-mobile", "confirm-mobile", "delete-account",
                 "account-deleted", "forgot-password", "reset-password", "forgot-identifier", "consent",
                 "logout", "portal-signed-out", "accessibility", "not-found", "activation-expired",
                 "passkey-password", "passkey-create", "account-passkey-added", "passkey-manage",
                 "account-passkey-renamed", "passkey-sign-in", "account-passkey-removed",
                 "sign-in-time-warning", "sign-in-time-extended", "sign-in-time-out", "code-time-warning",
                 "code-time-out", "already-signed-in"):
        assert f"miel-{page}-360.png" in names, sorted(names)
    assert not any(name.startswith("malakoff-") for name in names)
    assert png_width(tmp_path / "miel-sign-in-360.png") == 360
    assert done.stdout.strip() == f"{len(names)} screenshots in {tmp_path}/"


def test_without_chromium_the_command_says_what_to_install(tmp_path):
    environment = {**os.environ, "IDP_TEST_CHROMIUM": str(tmp_path / "no-chromium")}
    done = subprocess.run([*COMMAND, "--out", str(tmp_path / "out")], cwd=ROOT, env=environment,  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert f"no Chromium at {tmp_path / 'no-chromium'}: apt-get install chromium" in done.stderr
    assert not (tmp_path / "out").exists()

"""`idp keys …`: operators' commands over the key store (SPEC §8)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from idp.keystore import KeyInfo, KeyStore

COMMANDS = ["list", "generate", "activate", "retire", "forget", "rotate", "prune"]


@pytest.fixture
def keystore(app) -> KeyStore:
    store = app.extensions["idp"].keystore
    store.ensure_initialized()
    return store


def the(store: KeyStore, state: str) -> KeyInfo:
    (info,) = [info for info in store.all_keys() if info.state == state]
    return info


def keys(runner, *args: str):
    return runner.invoke(args=["keys", *args])


def assert_refused(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner, command):
    result = keys(runner, command, "--help")

    assert result.exit_code == 0, result.output
    assert f"keys {command}" in result.output


def test_list_marks_the_signing_key(runner, keystore):
    active, upcoming = the(keystore, "active"), the(keystore, "next")

    result = keys(runner, "list")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"]
    (active_line,) = [line for line in lines if active.kid in line]
    assert active_line.startswith("*")
    assert "active" in active_line
    (next_line,) = [line for line in lines if upcoming.kid in line]
    assert not next_line.startswith("*")
    assert "next" in next_line
    assert "Z" in active_line  # ISO 8601 UTC times


def test_generate_publishes_a_next_key(runner, keystore):
    result = keys(runner, "generate", "--alg", "ES256")

    assert result.exit_code == 0, result.output
    created = [info for info in keystore.all_keys() if info.alg == "ES256"]
    assert len(created) == 1
    assert created[0].state == "next"
    assert created[0].kid in result.output
    assert "may sign from" in result.output


@pytest.mark.parametrize("command", [["generate"], ["rotate", "--force"]])
def test_a_key_list_that_cannot_be_written_leaves_no_key_file(runner, keystore, monkeypatch, command):
    # A full disk when keys.json is replaced: the key file written just before goes too, so that
    # "nothing was changed" holds.
    before, files = keystore.all_keys(), sorted(keystore.directory.iterdir())
    replace = os.replace

    def full_disk(source, destination):
        if os.path.basename(destination) == "keys.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(destination))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", full_disk)

    assert_refused(keys(runner, *command), "No space left on device; nothing was changed")
    assert keystore.all_keys() == before
    assert sorted(keystore.directory.iterdir()) == files


def test_a_key_listed_before_the_failure_keeps_its_file(runner, keystore, monkeypatch):
    # keys.json replaced, then syncing the directory fails: the new key is listed, so its file
    # stays (without it the JWKS would stop).
    before = {info.kid for info in keystore.all_keys()}
    fsync, directory_syncs = os.fsync, []

    def second_directory_sync_fails(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            directory_syncs.append(fd)
            if len(directory_syncs) == 2:  # the key file's, then keys.json's
                raise OSError(errno.EIO, "Input/output error")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", second_directory_sync_fails)
    result = keys(runner, "generate")
    monkeypatch.undo()

    assert_refused(result, "Input/output error")
    (new,) = [info for info in keystore.all_keys() if info.kid not in before]
    assert (keystore.directory / f"{new.kid}.pem").exists()


def test_generate_rejects_an_unknown_algorithm(runner, keystore):
    before = keystore.all_keys()

    result = keys(runner, "generate", "--alg", "HS256")

    assert result.exit_code == 2
    assert "Invalid value for '--alg'" in result.output
    assert keystore.all_keys() == before


def test_activate_waits_for_prepublication_unless_forced(runner, keystore, monkeypatch):
    monkeypatch.setattr(keystore, "prepublish_seconds", 3600)
    old, upcoming = the(keystore, "active"), the(keystore, "next")

    refused = keys(runner, "activate", upcoming.kid)

    assert_refused(refused, "--force")
    assert keystore.signing_key().kid == old.kid

    forced = keys(runner, "activate", upcoming.kid, "--force")

    assert forced.exit_code == 0, forced.output
    assert f"activated {upcoming.kid}" in forced.output
    assert f"retired {old.kid}" in forced.output
    assert keystore.signing_key().kid == upcoming.kid


def test_activate_an_unknown_key_is_refused(runner, keystore):
    assert_refused(keys(runner, "activate", "nope"), "no key 'nope'")


def test_retire_a_next_key(runner, keystore):
    upcoming = the(keystore, "next")

    result = keys(runner, "retire", upcoming.kid)

    assert result.exit_code == 0, result.output
    assert f"retired {upcoming.kid}" in result.output
    assert [info.state for info in keystore.all_keys() if info.kid == upcoming.kid] == ["retired"]


def test_retire_the_active_key_is_refused(runner, keystore):
    result = keys(runner, "retire", the(keystore, "active").kid)

    assert_refused(result, "activate another key first")


def test_rotate(runner, keystore, monkeypatch):
    monkeypatch.setattr(keystore, "prepublish_seconds", 0)
    old, upcoming = the(keystore, "active"), the(keystore, "next")

    result = keys(runner, "rotate")

    assert result.exit_code == 0, result.output
    assert f"activated {upcoming.kid}" in result.output
    assert f"retired {old.kid}" in result.output
    assert keystore.signing_key().kid == upcoming.kid
    assert the(keystore, "next").kid in result.output


def test_rotate_too_early_is_refused_unless_forced(runner, keystore, monkeypatch):
    monkeypatch.setattr(keystore, "prepublish_seconds", 3600)
    upcoming = the(keystore, "next")

    assert_refused(keys(runner, "rotate"), "--force")

    forced = keys(runner, "rotate", "--force")

    assert forced.exit_code == 0, forced.output
    assert keystore.signing_key().kid == upcoming.kid


def test_prune(runner, keystore, monkeypatch):
    assert keys(runner, "prune").output.strip() == "nothing to prune"
    upcoming = the(keystore, "next")
    keys(runner, "retire", upcoming.kid)
    monkeypatch.setattr(keystore, "retain_seconds", 0)

    result = keys(runner, "prune")

    assert result.exit_code == 0, result.output
    assert f"removed {upcoming.kid}" in result.output
    assert upcoming.kid not in {info.kid for info in keystore.all_keys()}


def test_a_key_whose_file_is_lost_is_named_refused_and_forgotten(runner, keystore, monkeypatch):
    monkeypatch.setattr(keystore, "prepublish_seconds", 0)
    active, upcoming = the(keystore, "active"), the(keystore, "next")
    (keystore.directory / f"{upcoming.kid}.pem").unlink()

    listed = keys(runner, "list")
    assert_refused(listed, "1 key(s) unusable")
    assert f"! {keystore.directory / upcoming.kid}.pem is missing" in listed.output
    (next_line,) = [line for line in listed.output.splitlines() if line.split()[:2] == ["!", upcoming.kid]]
    assert "next" in next_line
    as_json = keys(runner, "list", "--json")
    assert as_json.exit_code == 1
    problems = {line["kid"]: line["problem"] for line in map(json.loads, as_json.stdout.splitlines())}
    assert problems[active.kid] is None
    assert f"idp keys forget {upcoming.kid}" in problems[upcoming.kid]

    assert_refused(keys(runner, "rotate"), f"idp keys forget {upcoming.kid}")
    assert_refused(keys(runner, "activate", upcoming.kid), f"{upcoming.kid}.pem is missing")
    assert the(keystore, "active") == active

    forgotten = keys(runner, "forget", upcoming.kid)

    assert forgotten.exit_code == 0, forgotten.output
    assert f"forgot {upcoming.kid} (next)" in forgotten.output
    assert keys(runner, "list").exit_code == 0
    rotated = keys(runner, "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert "published next key" in rotated.output


def test_forget_refuses_a_key_whose_file_is_sound(runner, keystore):
    assert_refused(keys(runner, "forget", the(keystore, "next").kid), "file is sound")


def test_list_says_when_no_key_signs(runner, keystore, monkeypatch):
    monkeypatch.setattr(keystore, "prepublish_seconds", 0)
    active = the(keystore, "active")
    keys_json = keystore.directory / "keys.json"
    document = json.loads(keys_json.read_text())
    document["keys"] = [entry for entry in document["keys"] if entry["kid"] != active.kid]
    keys_json.write_text(json.dumps(document))

    result = keys(runner, "list")

    assert result.exit_code == 0, result.output
    assert "no key signs: activate one" in result.output

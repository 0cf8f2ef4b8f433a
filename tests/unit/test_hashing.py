"""Password hashing: argon2id with the configured cost, upgrades, and equal work for unknown ids."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest
from argon2 import PasswordHasher as Argon2

from idp.accounts.hashing import PasswordHasher


def _hasher(**cost) -> PasswordHasher:
    params = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1, **cost}
    return PasswordHasher(**params)


def test_hashes_are_argon2id_with_the_configured_cost():
    stored = _hasher(time_cost=2, memory_cost=2048).hash("Correct-Horse-7!")
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert _hasher(time_cost=2, memory_cost=2048).verify(stored, "Correct-Horse-7!").ok
    assert not _hasher(time_cost=2, memory_cost=2048).verify(stored, "wrong").ok


def test_a_hash_with_older_parameters_asks_to_be_rehashed():
    old = Argon2(time_cost=1, memory_cost=1024, parallelism=1).hash("Correct-Horse-7!")
    result = _hasher(time_cost=2, memory_cost=2048).verify(old, "Correct-Horse-7!")
    assert result.ok and result.needs_rehash


def test_a_missing_or_broken_hash_costs_one_verification_like_a_wrong_password(monkeypatch):
    hasher = _hasher()
    stored = hasher.hash("Correct-Horse-7!")
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def verify(self, stored_hash, password):
            calls.append(stored_hash)
            return self.inner.verify(stored_hash, password)

    monkeypatch.setattr(hasher, "_argon2", Counting(hasher._argon2))
    for stored_hash in (stored, None, "not-a-hash"):
        calls.clear()
        assert not hasher.verify(stored_hash, "wrong").ok
        # A broken hash is refused at once; then a real verification is made all the same.
        assert [h for h in calls if h and h.startswith("$argon2id$")] == [calls[-1]], stored_hash


def _pbkdf2(password: str, salt: str = "s4lt", iterations: int = 1000) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


@pytest.mark.parametrize("make_hash", [
    _pbkdf2,
    lambda password: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode(),
], ids=["pbkdf2_sha256", "bcrypt"])
def test_legacy_hashes_verify_and_ask_to_be_upgraded(make_hash):
    stored = make_hash("Ancien-Systeme-1!")
    result = _hasher().verify(stored, "Ancien-Systeme-1!")
    assert result.ok and result.needs_rehash
    assert not _hasher().verify(stored, "wrong").ok


@pytest.mark.parametrize("broken", ["pbkdf2_sha256$x$s$d", "pbkdf2_sha256$0$s$d", "$2b$04$short"])
def test_broken_legacy_hashes_never_verify(broken):
    assert not _hasher().verify(broken, "anything").ok

"""Password hashing: argon2id with the configured cost, upgrades, and equal work for unknown ids."""

from __future__ import annotations

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

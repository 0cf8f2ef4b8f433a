"""Password hashing: argon2id with the configured cost, upgrades, and equal work for unknown ids."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest
from argon2 import PasswordHasher as Argon2

from idp.accounts.hashing import PasswordHasher, legacy_cost


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
    in_block = hasher._arena.matches  # the provider's own hashes are checked there

    def matches(stored_hash, secret):
        found = in_block(stored_hash, secret)
        if found is not None:
            calls.append(stored_hash)
        return found

    monkeypatch.setattr(hasher._arena, "matches", matches)
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


def _bcrypt(password: str, variant: str = "2b") -> str:
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"${variant}${made[4:]}"  # the three variants differ by their name only


LEGACY = {
    "pbkdf2_sha256": _pbkdf2,
    "bcrypt 2a": lambda password: _bcrypt(password, "2a"),
    "bcrypt 2b": _bcrypt,
    "bcrypt 2y": lambda password: _bcrypt(password, "2y"),
}


@pytest.mark.parametrize("make_hash", LEGACY.values(), ids=LEGACY.keys())
def test_a_wrapped_legacy_hash_verifies_the_password_and_keeps_no_legacy_digest(make_hash):
    legacy = make_hash("Ancien-Systeme-1!")
    wrapped = _hasher().wrap(legacy)
    digest = legacy.rsplit("$", 1)[1] if legacy.startswith("pbkdf2") else legacy[29:]

    assert digest not in wrapped
    assert wrapped.startswith(("$wrapped-pbkdf2_sha256$1000$s4lt$argon2id$v=19$m=1024,t=1,p=1$",
                               f"$wrapped-bcrypt{legacy[:29]}$argon2id$v=19$m=1024,t=1,p=1$"))
    assert len(wrapped) <= 255  # the column
    assert _hasher().import_problem(wrapped) is None
    result = _hasher().verify(wrapped, "Ancien-Systeme-1!")
    assert result.ok and result.needs_rehash  # plain argon2id at the next sign-in
    assert not _hasher().verify(wrapped, "Ancien-Systeme-2!").ok


def test_wrapping_leaves_argon2id_hashes_as_they_are():
    native = _hasher().hash("Correct-Horse-7!")
    wrapped = _hasher().wrap(_pbkdf2("Correct-Horse-7!"))
    assert _hasher().wrap(native) == native
    assert _hasher().wrap(wrapped) == wrapped


def _tampered(wrapped: str, old: str, new: str) -> str:
    assert old in wrapped
    return wrapped.replace(old, new, 1)


@pytest.mark.parametrize(("make_hash", "old", "new"), [
    (_pbkdf2, "$1000$", "$1001$"),  # iterations
    (_pbkdf2, "$s4lt$", "$s4lT$"),  # salt
    (_pbkdf2, "$wrapped-pbkdf2_sha256$", "$wrapped-bcrypt$"),  # the scheme
    (_bcrypt, "$04$", "$05$"),  # cost
    (_bcrypt, "$2b$04$", "$2b$04$A"),  # salt shifted
    (_bcrypt, "$argon2id$v=19$m=1024,t=1,p=1$", "$argon2id$v=19$m=1024,t=2,p=1$"),  # argon2 part
], ids=["iterations", "pbkdf2 salt", "scheme", "bcrypt cost", "bcrypt salt", "argon2 passes"])
def test_a_tampered_wrapped_hash_verifies_no_password(make_hash, old, new):
    wrapped = _hasher().wrap(make_hash("Ancien-Systeme-1!"))
    assert not _hasher().verify(_tampered(wrapped, old, new), "Ancien-Systeme-1!").ok


@pytest.mark.parametrize("broken", [
    "$wrapped-pbkdf2_sha256$1000$s4lt",  # no argon2id part
    "$wrapped-pbkdf2_sha256$x$s4lt$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
    "$wrapped-pbkdf2_sha256$1000$s4lt$argon2id$not-parameters",
    "$wrapped-$2b$04$" + "a" * 22 + "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",  # no label
    "$wrapped-bcrypt$2b$04$short$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
    "$wrapped-md5$abc$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
])
def test_a_broken_wrapped_hash_is_refused_at_import_and_verifies_nothing(broken):
    assert _hasher().import_problem(broken).reason.startswith("no supported hash")
    assert not _hasher().verify(broken, "anything").ok


BCRYPT_SETTINGS = "$2b$04$eeeeeeeeeeeeeeeeeeeeee"  # a salt bcrypt accepts
BCRYPT_DIGEST = "w9G02VQVq311WTvM9NwRd6h5KWfs5oC"  # one bcrypt writes


@pytest.mark.parametrize(("unmatchable", "scheme"), [
    ("pbkdf2_sha256$1000$s4lt$not*base64*" + "A" * 32, "PBKDF2"),
    ("pbkdf2_sha256$1000$s4lt$ZGlnZXN0", "PBKDF2"),  # base64, of 6 bytes
    ("pbkdf2_sha256$1000$s4lt$" + base64.b64encode(bytes(32)).decode()[:-1], "PBKDF2"),  # unpadded
    ("pbkdf2_sha256$1000$s4lt$" + base64.b64encode(bytes(32)).decode()[:-2] + "B=", "PBKDF2"),
    (BCRYPT_SETTINGS + "!" + BCRYPT_DIGEST[1:], "bcrypt"),  # outside bcrypt's alphabet
    (BCRYPT_SETTINGS + BCRYPT_DIGEST[:-1] + "b", "bcrypt"),  # a last character bcrypt never writes
    (BCRYPT_SETTINGS[:-1] + "a" + BCRYPT_DIGEST, "bcrypt"),  # a salt bcrypt refuses
    (BCRYPT_SETTINGS[:-1] + "+" + BCRYPT_DIGEST, "bcrypt"),
    ("$wrapped-bcrypt" + BCRYPT_SETTINGS[:-1] + "a$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
     "bcrypt"),
], ids=["pbkdf2 not base64", "pbkdf2 short", "pbkdf2 unpadded", "pbkdf2 loose bits",
        "bcrypt alphabet", "bcrypt digest end", "bcrypt salt end", "bcrypt salt alphabet",
        "wrapped bcrypt salt"])
def test_a_legacy_hash_no_password_could_match_is_refused_at_import(unmatchable, scheme):
    problem = _hasher().import_problem(unmatchable)
    assert not problem.costly
    assert problem.reason.startswith(f"no usable hash: its {scheme} ")
    assert problem.reason.endswith("so no password would match it")
    assert not _hasher().verify(unmatchable, "anything").ok


@pytest.mark.parametrize(("legacy", "bound"), [
    ("pbkdf2_sha256$1000001$s4lt$ZGlnZXN0", "1000000 are accepted"),
    ("$2b$14$" + "a" * 53, "at most 13 is accepted"),
], ids=["pbkdf2 iterations", "bcrypt cost"])
def test_a_wrapped_hash_beyond_the_legacy_bounds_is_refused_and_never_computed(monkeypatch, legacy,
                                                                                bound):
    hasher = _hasher()
    wrapped = hasher.wrap(legacy)  # wrapping computes no legacy digest, whatever its cost
    assert wrapped.startswith("$wrapped-")
    problem = hasher.import_problem(wrapped)
    assert problem.costly and bound in problem.reason

    def never(*_args):
        raise AssertionError("computed")

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", never)
    monkeypatch.setattr(bcrypt, "hashpw", never)
    assert not hasher.verify(wrapped, "anything").ok


def test_a_wrapped_hash_whose_argon2id_part_is_beyond_the_bounds_is_refused():
    costly = Argon2(time_cost=1, memory_cost=131072, parallelism=1).hash("digest")
    wrapped = "$wrapped-pbkdf2_sha256$1000$s4lt" + costly
    assert "m=131072 KiB" in _hasher().import_problem(wrapped).reason
    assert not _hasher().verify(wrapped, "anything").ok


def test_a_hash_longer_than_its_column_is_refused_at_import():
    long_salt = Argon2(time_cost=1, memory_cost=1024, parallelism=1, salt_len=200).hash("x")
    assert len(long_salt) > 255
    assert _hasher().import_problem(long_salt).reason.startswith("no supported hash")


def test_legacy_cost_names_the_scheme_and_its_cost_wrapped_or_not():
    hasher = _hasher()
    pbkdf2 = _pbkdf2("Ancien-Systeme-1!", iterations=1200)
    bcrypted = bcrypt.hashpw(b"Ancien-Systeme-1!", bcrypt.gensalt(rounds=5)).decode()
    assert legacy_cost(pbkdf2) == legacy_cost(hasher.wrap(pbkdf2)) == "pbkdf2_sha256$1200"
    assert legacy_cost(bcrypted) == legacy_cost(hasher.wrap(bcrypted)) == "bcrypt$05"
    assert legacy_cost(hasher.hash("Ancien-Systeme-1!")) == legacy_cost("not-a-hash") == ""


def test_every_check_computes_one_digest_at_each_legacy_cost_of_the_tenant(monkeypatch):
    """An imported account, a native one and an unknown identifier do the same work."""
    hasher = _hasher()
    password = "Ancien-Systeme-1!"
    imported = {"pbkdf2": hasher.wrap(_pbkdf2(password, iterations=1200)),
                "bcrypt": hasher.wrap(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode())}
    costs = {legacy_cost(stored) for stored in imported.values()}
    computed = []
    pbkdf2_hmac, hashpw = hashlib.pbkdf2_hmac, bcrypt.hashpw

    def counting_pbkdf2(name, secret, salt, iterations):
        computed.append(f"pbkdf2_sha256${iterations}")
        return pbkdf2_hmac(name, secret, salt, iterations)

    def counting_bcrypt(secret, settings):
        computed.append(f"bcrypt${settings[4:6].decode()}")
        return hashpw(secret, settings)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting_pbkdf2)
    monkeypatch.setattr(bcrypt, "hashpw", counting_bcrypt)
    for stored in (*imported.values(), hasher.hash(password), None):
        computed.clear()
        assert not hasher.verify(stored, "wrong", legacy_costs=costs).ok
        assert sorted(computed) == sorted(costs), stored
    computed.clear()
    assert hasher.verify(imported["bcrypt"], password, legacy_costs=costs).ok
    assert sorted(computed) == sorted(costs)


@pytest.mark.parametrize("cost", ["bcrypt$99", "pbkdf2_sha256$2000000", "pbkdf2_sha256$x", "md5$3", ""])
def test_a_legacy_cost_beyond_the_bounds_or_unreadable_is_never_computed(monkeypatch, cost):
    def never(*_args):
        raise AssertionError("computed")

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", never)
    monkeypatch.setattr(bcrypt, "hashpw", never)
    assert not _hasher().verify(None, "anything", legacy_costs={cost}).ok

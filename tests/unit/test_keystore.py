"""Signing keys on disk: the next | active | retired state machine (SPEC §8)."""

from __future__ import annotations

import json
import stat
import threading
from dataclasses import fields
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from idp.keystore import KeyInfo, KeyStore, KeyStoreError

PREPUBLISH = 300
RETAIN = 3600
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def make_store(keys_dir: Path, clock: FakeClock):
    """Another node: its own KeyStore (own caches) on the same directory."""

    def make() -> KeyStore:
        return KeyStore(keys_dir, prepublish_seconds=PREPUBLISH, retain_seconds=RETAIN, clock=clock)

    return make


@pytest.fixture
def store(make_store) -> KeyStore:
    return make_store()


def by_state(store: KeyStore, state: str) -> list[KeyInfo]:
    return [info for info in store.all_keys() if info.state == state]


def the(store: KeyStore, state: str) -> KeyInfo:
    (info,) = by_state(store, state)
    return info


def published_kids(store: KeyStore) -> set[str]:
    return {jwk["kid"] for jwk in store.public_jwks()["keys"]}


def sign(store: KeyStore) -> str:
    key = store.signing_key()
    header = {"alg": store.signing_alg(), "kid": key.kid}
    return jwt.encode(header, {"sub": "member-1"}, key, algorithms=[store.signing_alg()])


def verify(token: str, jwks: dict) -> dict:
    keyset = KeySet.import_key_set(jwks)
    return jwt.decode(token, keyset, algorithms=["RS256", "ES256"]).claims


# -- empty and initial state ---------------------------------------------------------


def test_empty_directory_has_no_keys_and_reads_create_nothing(store, keys_dir):
    assert store.all_keys() == []
    assert store.public_jwks() == {"keys": []}
    with pytest.raises(KeyStoreError, match=r"no active signing key.*idp keys generate"):
        store.signing_key()
    assert not keys_dir.exists()


def test_ensure_initialized_creates_an_active_and_a_next_key(store, keys_dir, clock):
    store.ensure_initialized()

    active, upcoming = the(store, "active"), the(store, "next")
    assert active.activated_at == clock.now
    assert active.alg == upcoming.alg == "RS256"
    assert store.signing_key().kid == active.kid
    assert published_kids(store) == {active.kid, upcoming.kid}
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700


def test_ensure_initialized_is_idempotent(store):
    store.ensure_initialized()
    before = store.all_keys()

    store.ensure_initialized()

    assert store.all_keys() == before


def test_ensure_initialized_from_concurrent_nodes_creates_one_set(make_store):
    # Separate KeyStores open the lock file separately, so flock serializes
    # them exactly as it serializes separate processes.
    stores = [make_store() for _ in range(4)]
    threads = [threading.Thread(target=s.ensure_initialized) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(info.state for info in stores[0].all_keys()) == ["active", "next"]


# -- files -----------------------------------------------------------------------------


def test_private_key_files_are_0600_and_metadata_has_no_private_material(store, keys_dir):
    store.ensure_initialized()
    store.generate("ES256")

    pems = sorted(keys_dir.glob("*.pem"))
    assert [p.stem for p in pems] == sorted(info.kid for info in store.all_keys())
    for pem in pems:
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8

    raw = (keys_dir / "keys.json").read_text()
    assert "PRIVATE" not in raw
    allowed = {f.name for f in fields(KeyInfo)}
    for entry in json.loads(raw)["keys"]:
        assert set(entry) == allowed
    assert not list(keys_dir.glob("*.tmp"))


def test_public_jwks_has_no_private_members(store):
    store.ensure_initialized()
    store.generate("ES256")

    jwks = store.public_jwks()

    assert jwks["keys"][0]["kid"] == store.signing_key().kid  # active first
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["use"] == "sig"
        assert jwk["kty"] in {"RSA", "EC"}
        assert jwk["alg"] in {"RS256", "ES256"}
        assert jwk["kid"]


def test_verification_keyset_holds_only_public_keys(store):
    store.ensure_initialized()

    keyset = store.verification_keyset()

    assert {key.kid for key in keyset} == published_kids(store)
    assert not any(key.is_private for key in keyset)


def test_parsed_keys_are_cached(store):
    store.ensure_initialized()

    assert store.signing_key() is store.signing_key()


def test_missing_key_file_is_reported(store, keys_dir):
    store.ensure_initialized()
    active = the(store, "active")
    (keys_dir / f"{active.kid}.pem").unlink()

    fresh_node = KeyStore(keys_dir, prepublish_seconds=0, retain_seconds=0)

    with pytest.raises(KeyStoreError, match=f"{active.kid}.pem is missing"):
        fresh_node.signing_key()
    assert active.kid in {info.kid for info in fresh_node.all_keys()}  # keys() still works


def lose(keys_dir: Path, info: KeyInfo, how: str) -> None:
    """The private key file of ``info`` gone, or overwritten with what is not a key."""
    path = keys_dir / f"{info.kid}.pem"
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(b"not a key\n")


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_a_key_whose_file_is_lost_is_not_activated(store, keys_dir, how):
    store.ensure_initialized()
    active, upcoming = the(store, "active"), the(store, "next")
    lose(keys_dir, upcoming, how)
    before = (keys_dir / "keys.json").read_bytes()

    for attempt in (lambda: store.activate(upcoming.kid, force=True), lambda: store.rotate(force=True)):
        with pytest.raises(KeyStoreError, match=f"idp keys forget {upcoming.kid}"):
            attempt()

    assert (keys_dir / "keys.json").read_bytes() == before
    assert store.signing_key().kid == active.kid


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_problems_name_the_keys_whose_file_is_lost(store, keys_dir, how):
    store.ensure_initialized()
    assert store.problems() == {}
    upcoming = the(store, "next")

    lose(keys_dir, upcoming, how)

    (message,) = store.problems().values()
    assert list(store.problems()) == [upcoming.kid]
    assert f"{upcoming.kid}.pem" in message
    assert f"idp keys forget {upcoming.kid}" in message


def test_forgetting_a_lost_key_publishes_and_signs_again(make_store, keys_dir, clock):
    store = make_store()
    store.ensure_initialized()
    active, upcoming = the(store, "active"), the(store, "next")
    store.retire(upcoming.kid)
    lose(keys_dir, upcoming, "missing")
    fresh_node = make_store()
    with pytest.raises(KeyStoreError, match="is missing"):
        fresh_node.public_jwks()

    forgotten = store.forget(upcoming.kid)

    assert forgotten.kid == upcoming.kid
    assert upcoming.kid not in {info.kid for info in store.all_keys()}
    assert published_kids(make_store()) == {active.kid}
    assert verify(sign(make_store()), make_store().public_jwks())["sub"] == "member-1"


def test_forget_refuses_a_sound_key_the_active_key_and_an_unknown_one(store, keys_dir):
    store.ensure_initialized()
    active, upcoming = the(store, "active"), the(store, "next")
    before = store.all_keys()

    with pytest.raises(KeyStoreError, match="file is sound"):
        store.forget(upcoming.kid)
    lose(keys_dir, active, "missing")
    with pytest.raises(KeyStoreError, match="activate another key first"):
        store.forget(active.kid)
    with pytest.raises(KeyStoreError, match="no key 'nope'"):
        store.forget("nope")

    assert store.all_keys() == before


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"kid": "../../etc/x", "alg": "RS256", "state": "next", "created_at": 1}], "invalid kid"),
        ([{"kid": "a", "alg": "HS256", "state": "next", "created_at": 1}], "unsupported alg"),
        ([{"kid": "a", "alg": "RS256", "state": "signing", "created_at": 1}], "unknown state"),
        ([{"kid": "a", "alg": "RS256", "state": "retired", "created_at": 1}], "no retired_at"),
        ([{"kid": "a", "alg": "RS256"}], "malformed key entry"),
        (
            [
                {"kid": k, "alg": "RS256", "state": "active", "created_at": 1, "activated_at": 1}
                for k in ("a", "b")
            ],
            "several active keys",
        ),
    ],
)
def test_invalid_metadata_is_refused(store, keys_dir, entries, message):
    keys_dir.mkdir()
    (keys_dir / "keys.json").write_text(json.dumps({"version": 1, "keys": entries}))

    with pytest.raises(KeyStoreError, match=message):
        store.all_keys()


# -- generate / activate / retire ---------------------------------------------------------


def test_generate_publishes_a_next_key_that_does_not_sign(store):
    store.ensure_initialized()
    signing = store.signing_key().kid

    info = store.generate("ES256")

    assert info.state == "next"
    assert info.alg == "ES256"
    assert info.kid in published_kids(store)
    assert store.signing_key().kid == signing


def test_generate_refuses_an_unsupported_algorithm(store):
    with pytest.raises(KeyStoreError, match="unsupported algorithm 'HS256'"):
        store.generate("HS256")


def test_activate_waits_for_prepublication(store, clock):
    store.ensure_initialized()
    old = the(store, "active")
    info = store.generate()

    with pytest.raises(KeyStoreError, match=r"in 300s .*--force"):
        store.activate(info.kid)
    clock.advance(PREPUBLISH - 1)
    with pytest.raises(KeyStoreError, match=r"in 1s .*--force"):
        store.activate(info.kid)
    assert store.signing_key().kid == old.kid

    clock.advance(1)
    activated = store.activate(info.kid)

    assert activated.state == "active"
    assert activated.activated_at == clock.now
    assert store.signing_key().kid == info.kid
    retired = next(i for i in store.all_keys() if i.kid == old.kid)
    assert retired.state == "retired"
    assert retired.retired_at == clock.now
    assert old.kid in published_kids(store)


def test_activate_with_force_skips_prepublication(store):
    store.ensure_initialized()
    info = store.generate()

    store.activate(info.kid, force=True)

    assert store.signing_key().kid == info.kid
    assert len(by_state(store, "active")) == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("unknown", "no key 'nope'"),
        ("active", "already the active signing key"),
        ("retired", "retired and cannot sign again"),
    ],
)
def test_activate_refuses(store, clock, target, message):
    store.ensure_initialized()
    first = the(store, "active")
    clock.advance(PREPUBLISH)
    store.activate(the(store, "next").kid)
    kid = {"unknown": "nope", "active": the(store, "active").kid, "retired": first.kid}[target]

    with pytest.raises(KeyStoreError, match=message):
        store.activate(kid, force=True)


def test_retire_a_next_key(store, clock):
    store.ensure_initialized()
    upcoming = the(store, "next")

    retired = store.retire(upcoming.kid)

    assert retired.state == "retired"
    assert retired.retired_at == clock.now
    assert by_state(store, "next") == []


def test_retire_refuses_the_active_key(store):
    store.ensure_initialized()

    with pytest.raises(KeyStoreError, match="activate another key first"):
        store.retire(the(store, "active").kid)
    assert len(by_state(store, "active")) == 1


def test_retire_refuses_unknown_or_retired_keys(store):
    store.ensure_initialized()
    kid = the(store, "next").kid
    store.retire(kid)

    with pytest.raises(KeyStoreError, match="already retired"):
        store.retire(kid)
    with pytest.raises(KeyStoreError, match="no key 'nope'"):
        store.retire("nope")


# -- rotate / prune ------------------------------------------------------------------------


def test_rotate_activates_the_prepublished_key_and_publishes_the_next(store, clock):
    store.ensure_initialized()
    old, upcoming = the(store, "active"), the(store, "next")
    clock.advance(PREPUBLISH)

    lines = store.rotate()

    assert store.signing_key().kid == upcoming.kid
    assert next(i for i in store.all_keys() if i.kid == old.kid).state == "retired"
    fresh = the(store, "next")
    assert fresh.kid not in {old.kid, upcoming.kid}
    assert fresh.alg == "RS256"
    assert published_kids(store) == {old.kid, upcoming.kid, fresh.kid}
    text = "\n".join(lines)
    assert f"activated {upcoming.kid}" in text
    assert f"retired {old.kid}" in text
    assert f"published next key {fresh.kid}" in text


def test_rotate_refuses_a_key_published_too_recently(store, clock):
    store.ensure_initialized()
    before = store.all_keys()
    clock.advance(PREPUBLISH - 10)

    with pytest.raises(KeyStoreError, match=r"idp keys rotate` again in 10s .*--force"):
        store.rotate()
    assert store.all_keys() == before  # nothing half done


def test_rotate_with_force(store):
    store.ensure_initialized()
    upcoming = the(store, "next")

    store.rotate(force=True)

    assert store.signing_key().kid == upcoming.kid


def test_rotate_without_next_key_only_publishes_one(store):
    store.ensure_initialized()
    active = the(store, "active")
    store.retire(the(store, "next").kid)

    lines = store.rotate()

    assert "no key was activated" in lines[0]
    assert store.signing_key().kid == active.kid
    assert len(by_state(store, "next")) == 1


def test_rotate_keeps_the_algorithm_of_the_active_key(store, clock):
    store.ensure_initialized("ES256")
    clock.advance(PREPUBLISH)

    store.rotate()

    assert {info.alg for info in store.all_keys()} == {"ES256"}
    assert store.signing_alg() == "ES256"


def test_prune_removes_retired_keys_only_after_retention(store, keys_dir, clock):
    store.ensure_initialized()
    old = the(store, "active")
    clock.advance(PREPUBLISH)
    store.rotate()

    clock.advance(RETAIN - 1)
    assert store.prune() == []
    assert old.kid in published_kids(store)

    clock.advance(1)
    lines = store.prune()

    assert len(lines) == 1
    assert lines[0].startswith(f"removed {old.kid}")
    assert old.kid not in {info.kid for info in store.all_keys()}
    assert old.kid not in published_kids(store)
    assert not (keys_dir / f"{old.kid}.pem").exists()


def test_rotate_prunes(store, clock):
    store.ensure_initialized()
    first = the(store, "active")
    clock.advance(PREPUBLISH)
    store.rotate()
    clock.advance(RETAIN)

    lines = store.rotate()

    assert any(line.startswith(f"removed {first.kid}") for line in lines)
    assert len(store.all_keys()) == 3  # retired, active, next


# -- several nodes, tokens in flight -----------------------------------------------------------


def test_another_node_sees_a_rotation_without_restart(make_store, clock):
    node, cli = make_store(), make_store()
    node.ensure_initialized()
    assert node.signing_key().kid == the(cli, "active").kid  # node has cached its view
    upcoming = the(cli, "next")
    clock.advance(PREPUBLISH)

    cli.rotate()

    assert node.signing_key().kid == upcoming.kid
    assert published_kids(node) == published_kids(cli)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_tokens_signed_before_a_rotation_verify_until_retention_ends(make_store, clock, alg):
    node, cli = make_store(), make_store()
    node.ensure_initialized(alg)
    token = sign(node)
    old_kid = node.signing_key().kid
    assert jwt.decode(token, node.verification_keyset()).header["kid"] == old_kid

    clock.advance(PREPUBLISH)
    cli.rotate()
    new_token = sign(node)

    assert jwt.decode(new_token, node.verification_keyset()).header["kid"] != old_kid
    assert verify(token, node.public_jwks())["sub"] == "member-1"
    assert verify(new_token, node.public_jwks())["sub"] == "member-1"

    clock.advance(RETAIN - 1)
    cli.prune()
    assert verify(token, node.public_jwks())["sub"] == "member-1"

    clock.advance(1)
    cli.prune()
    with pytest.raises(InvalidKeyIdError):
        verify(token, node.public_jwks())
    assert verify(new_token, node.public_jwks())["sub"] == "member-1"

"""Signing keys on disk: next | active | retired, the signing key, the public JWKS.

Rotation follows node-oidc-provider's recipe "publish, then sign, then retire"
(SPEC §8):

- a new key is first published in the JWKS as ``next`` and may sign only once
  it has been published for ``prepublish_seconds``, so relying parties that
  cache our JWKS already hold it when the first token it signed arrives;
- exactly one key is ``active``: it signs everything, and its ``kid`` goes in
  every JWS header;
- the key it replaces becomes ``retired`` and stays published for
  ``retain_seconds`` (at least the longest lifetime of a token it signed), after
  which ``prune`` deletes it.

Layout of the directory::

    keys.json   metadata of every key (kid, alg, state, times); never private material
    <kid>.pem   one PKCS#8 private key per file, mode 0600
    .lock       serializes writers between processes (fcntl.flock)

Several processes share the directory (server nodes, the CLI). Writers take the
lock, re-read keys.json, and replace files atomically (temporary file in the
same directory, then ``os.replace``). A key file is written before keys.json
lists it and deleted only after keys.json stopped listing it, so a reader never
sees a key it cannot load. Readers ``os.stat`` keys.json on every call and
re-read it only when it changed, so a rotation made with ``idp keys rotate``
reaches every running node on its next request, without a restart.

This module does not import Flask: the app and the CLI build a ``KeyStore`` from
the settings, and tests build one on a temporary directory with a fake clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from joserfc.errors import JoseError
from joserfc.jwk import DictKey, ECKey, KeyParameters, KeySet, RSAKey

KeyState = Literal["next", "active", "retired"]
SigningKey = RSAKey | ECKey

#: Supported JWS algorithms: RSA 2048 and P-256 (RFC 7518 §3.3 and §3.4).
ALGORITHMS = ("RS256", "ES256")
_STATES: tuple[KeyState, ...] = ("next", "active", "retired")
# kids become file names: keep them to the URL-safe alphabet so a tampered
# keys.json cannot point outside the directory.
_KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_METADATA_FILE = "keys.json"
_LOCK_FILE = ".lock"
_FORMAT_VERSION = 1


class KeyStoreError(Exception):
    """A key operation cannot be done, or the keys directory is unusable.

    The message is meant for the operator: it says what is wrong and what to do.
    """


@dataclass(frozen=True)
class KeyInfo:
    """Metadata of one signing key, as recorded in keys.json (unix seconds)."""

    kid: str
    alg: str
    state: KeyState
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None


def format_time(timestamp: float) -> str:
    """ISO 8601 in UTC, to the second, for operators' messages."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Signer:
    """The active key as one immutable value: what signs one token, read once.

    ``kid`` and ``alg`` go in the JWS header and ``key`` signs, all three from the
    same reading of keys.json, so a key activated while a token is being made
    cannot give it the header of one key and the signature of another.
    """

    kid: str
    alg: str
    key: SigningKey


@dataclass
class _Snapshot:
    """keys.json as read at one point, plus what was derived from it."""

    # (inode, mtime in ns, size) of the file read; None when there is none.
    # os.replace gives keys.json a new inode, so this changes on every write.
    signature: tuple[int, int, int] | None
    keys: tuple[KeyInfo, ...]
    # Built on first use (parsing PEM and exporting JWKs is the costly part).
    material: _Material | None = None


@dataclass(frozen=True)
class _Material:
    signer: Signer | None
    public_jwks: tuple[DictKey, ...]
    keyset: KeySet | None
    # The JWKS document as served, serialized once per keys.json.
    public_json: bytes


@dataclass
class _Transaction:
    """The key list being changed under the lock, files to delete after, and the key files it
    wrote (deleted if it fails and keys.json does not list them)."""

    keys: list[KeyInfo]
    doomed_files: list[Path] = field(default_factory=list)
    new_files: list[Path] = field(default_factory=list)

    def find(self, kid: str) -> KeyInfo | None:
        return next((info for info in self.keys if info.kid == kid), None)

    def in_state(self, state: KeyState) -> list[KeyInfo]:
        return [info for info in self.keys if info.state == state]

    def put(self, updated: KeyInfo) -> KeyInfo:
        self.keys = [updated if info.kid == updated.kid else info for info in self.keys]
        return updated


class _MissingKeyFile(KeyStoreError):
    pass


# What an operator can do about a key whose file is lost.
_REMEDY = "restore the file, or take the key out with `idp keys forget {kid}`"


class KeyStore:
    """The provider's signing keys, kept in one directory shared by every node."""

    def __init__(
        self,
        directory: str | Path,
        *,
        prepublish_seconds: int,
        retain_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.prepublish_seconds = prepublish_seconds
        self.retain_seconds = retain_seconds
        self._clock = clock
        self._metadata_path = self.directory / _METADATA_FILE
        # Guards the cached snapshot and parsed keys across a node's threads;
        # writers between processes are serialized by the .lock file instead.
        self._cache_lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        # kid -> parsed private key. A kid's file never changes once written,
        # so a parsed key stays valid for as long as keys.json lists it.
        self._parsed: dict[str, SigningKey] = {}

    # -- reading ---------------------------------------------------------------

    def all_keys(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        return list(self._current().keys)

    def get(self, kid: str) -> KeyInfo:
        """The key ``kid``; KeyStoreError if there is none."""
        info = next((info for info in self._current().keys if info.kid == kid), None)
        if info is None:
            raise self._unknown(kid)
        return info

    def activatable_at(self, info: KeyInfo) -> float:
        """When ``info`` has been published long enough to sign."""
        return info.created_at + self.prepublish_seconds

    def removable_at(self, info: KeyInfo) -> float | None:
        """When a retired key may be pruned (None for keys not retired)."""
        if info.retired_at is None:
            return None
        return info.retired_at + self.retain_seconds

    def signer(self) -> Signer:
        """The single active key with its kid and alg, as one snapshot.

        Take it once per token and use its ``kid`` and ``alg`` for the JWS header
        and its ``key`` to sign, so that verifiers pick the right key from the
        JWKS across rotations, even one that happens while the token is made.
        """
        signer = self._loaded().signer
        if signer is None:
            raise KeyStoreError(
                f"no active signing key in {self.directory}; run `idp keys generate`, then "
                "`idp keys activate KID` once it has been published (or with --force)"
            )
        return signer

    def signing_key(self) -> SigningKey:
        """The private key of the single active key, with its kid and alg set."""
        return self.signer().key

    def signing_alg(self) -> str:
        """The JWS ``alg`` of the active key ("RS256" or "ES256")."""
        return self.signer().alg

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS to publish: next, active and retired keys, public parts only.

        The active key comes first, for relying parties that take the first key.
        """
        return {"keys": [dict(jwk) for jwk in self._loaded().public_jwks]}

    def public_jwks_json(self) -> bytes:
        """``public_jwks()`` as JSON bytes, made once per change of keys.json (the JWKS endpoint)."""
        return self._loaded().public_json

    def verification_keyset(self) -> KeySet:
        """The published keys as a joserfc KeySet, to verify our own tokens."""
        keyset = self._loaded().keyset
        if keyset is None:
            raise KeyStoreError(f"no keys in {self.directory}; run `idp keys generate`")
        return keyset

    def problems(self) -> dict[str, str]:
        """The keys listed whose private key file is missing or unreadable, each with what is
        wrong (``idp keys list``): such a key can be neither published nor used to sign."""
        found = {}
        for info in self._current().keys:
            try:
                self._check_file(info)
            except KeyStoreError as exc:
                found[info.kid] = str(exc)
        return found

    # -- changing --------------------------------------------------------------

    def generate(self, alg: str = "RS256") -> KeyInfo:
        """Create a key in state "next": published in the JWKS, not signing yet."""
        _check_alg(alg)
        with self._transaction() as txn:
            return self._generate(txn, alg, self._clock())

    def activate(self, kid: str, *, force: bool = False) -> KeyInfo:
        """Make ``kid`` the signing key; the key that signed until now is retired.

        Refused while the key has been published for less than
        ``prepublish_seconds``, unless ``force``.
        """
        with self._transaction() as txn:
            activated, _previous = self._activate(txn, kid, force=force, now=self._clock())
            return activated

    def retire(self, kid: str) -> KeyInfo:
        """Retire a "next" key (it stays published until pruned).

        The active key cannot be retired: something must sign. Activate another
        key instead, which retires it.
        """
        with self._transaction() as txn:
            info = txn.find(kid)
            if info is None:
                raise self._unknown(kid)
            if info.state == "retired":
                raise KeyStoreError(f"key {kid} is already retired")
            if info.state == "active":
                raise KeyStoreError(
                    f"key {kid} is the active signing key and cannot be retired: activate "
                    "another key first (`idp keys rotate` does both)"
                )
            return txn.put(replace(info, state="retired", retired_at=self._clock()))

    def forget(self, kid: str) -> KeyInfo:
        """Take a key whose private key file is lost (missing or unreadable) out of keys.json:
        it can be neither published nor used, and while listed it stops the JWKS and signing.
        Its file, if any, stays.

        Refused for a key whose file is sound (retire it, and ``prune`` removes it once its
        tokens have expired) and for the active key (activate another key first).
        """
        with self._transaction() as txn:
            info = txn.find(kid)
            if info is None:
                raise self._unknown(kid)
            try:
                self._check_file(info)
            except KeyStoreError:
                pass
            else:
                raise KeyStoreError(
                    f"key {kid}'s file is sound: only a key whose file is lost is forgotten. "
                    "Retire it (`idp keys retire`); `idp keys prune` removes it once the tokens "
                    "it signed have expired"
                )
            if info.state == "active":
                raise KeyStoreError(
                    f"key {kid} is the active signing key: activate another key first "
                    "(`idp keys activate KID --force`), then forget this one"
                )
            # Its file, if any, is left where it is, for the operator to look at or remove.
            txn.keys.remove(info)
            return info

    def rotate(self, *, force: bool = False) -> list[str]:
        """One rotation step: publish, then sign, then retire. Returns what was done.

        1. the oldest "next" key, if published for ``prepublish_seconds`` (or
           ``force``), becomes active and the active key is retired;
        2. a fresh "next" key is published if none is left, so that the
           following rotation can proceed;
        3. retired keys past ``retain_seconds`` are pruned.

        Run it regularly (cron): each run activates the key published by the
        previous one.
        """
        now = self._clock()
        lines: list[str] = []
        with self._transaction() as txn:
            candidates = txn.in_state("next")
            if candidates:
                activated, previous = self._activate(
                    txn, candidates[0].kid, force=force, now=now, from_rotate=True
                )
                lines.append(
                    f"activated {activated.kid} ({activated.alg}): it signs new tokens from now on"
                )
                if previous is not None:
                    lines.append(
                        f"retired {previous.kid}: still published until "
                        f"{format_time(now + self.retain_seconds)} so that the tokens it "
                        "signed keep verifying"
                    )
            else:
                lines.append("no next key was published, so no key was activated")

            waiting = txn.in_state("next")
            if waiting:
                upcoming = waiting[0]
                lines.append(
                    f"next key {upcoming.kid} already published; it may sign from "
                    f"{format_time(self.activatable_at(upcoming))}"
                )
            else:
                active = txn.in_state("active")
                alg = active[0].alg if active else "RS256"
                upcoming = self._generate(txn, alg, now)
                lines.append(
                    f"published next key {upcoming.kid} ({alg}); it may sign from "
                    f"{format_time(self.activatable_at(upcoming))} (the next `idp keys rotate`)"
                )
            lines.extend(self._prune(txn, now))
        return lines

    def prune(self) -> list[str]:
        """Delete retired keys whose retention has passed. Returns what was removed."""
        with self._transaction() as txn:
            return self._prune(txn, self._clock())

    def ensure_initialized(self, alg: str = "RS256") -> None:
        """On an empty directory, create an active key and a next key.

        The first key signs at once: nothing can have cached a JWKS that never
        had a key. Does nothing when any key exists, so every node may call it
        at start-up.
        """
        _check_alg(alg)
        if self._current().keys:
            return  # the common case, without taking the lock
        with self._transaction() as txn:
            if txn.keys:
                return  # another node initialized it while we waited for the lock
            now = self._clock()
            first = self._generate(txn, alg, now)
            txn.put(replace(first, state="active", activated_at=now))
            self._generate(txn, alg, now)

    # -- state machine, inside a transaction -------------------------------------

    def _generate(self, txn: _Transaction, alg: str, now: float) -> KeyInfo:
        # Random hex kids: unique, opaque, safe as file names, and never start
        # with "-", which a shell command line would take for an option.
        kid = secrets.token_hex(8)
        while txn.find(kid) is not None:  # pragma: no cover - 64 random bits
            kid = secrets.token_hex(8)
        key = _new_key(alg, kid)
        # The file exists before keys.json lists it (see the module docstring).
        txn.new_files.append(self._key_path(kid))
        self._write_file(self._key_path(kid), key.as_pem(private=True))
        with self._cache_lock:
            self._parsed[kid] = key
        info = KeyInfo(kid=kid, alg=alg, state="next", created_at=now)
        txn.keys.append(info)
        return info

    def _activate(
        self,
        txn: _Transaction,
        kid: str,
        *,
        force: bool,
        now: float,
        from_rotate: bool = False,
    ) -> tuple[KeyInfo, KeyInfo | None]:
        info = txn.find(kid)
        if info is None:
            raise self._unknown(kid)
        if info.state == "active":
            raise KeyStoreError(f"key {kid} is already the active signing key")
        if info.state == "retired":
            raise KeyStoreError(
                f"key {kid} is retired and cannot sign again; publish a new key with "
                "`idp keys generate` (or `idp keys rotate`)"
            )
        ready_at = self.activatable_at(info)
        if now < ready_at and not force:
            remaining = math.ceil(ready_at - now)
            again = "`idp keys rotate`" if from_rotate else f"`idp keys activate {kid}`"
            raise KeyStoreError(
                f"key {kid} was published {int(now - info.created_at)}s ago; it may sign only "
                f"after {self.prepublish_seconds}s in the JWKS, so that relying parties' caches "
                f"already hold it. Run {again} again in {remaining}s "
                f"(from {format_time(ready_at)}), or use --force"
            )
        # A key that could not sign would stop every token: refused before anything changes.
        self._check_file(info)
        previous = None
        for active in txn.in_state("active"):
            previous = txn.put(replace(active, state="retired", retired_at=now))
        activated = txn.put(replace(info, state="active", activated_at=now))
        return activated, previous

    def _prune(self, txn: _Transaction, now: float) -> list[str]:
        lines = []
        for info in txn.in_state("retired"):
            removable_at = self.removable_at(info)
            if removable_at is not None and removable_at <= now:
                txn.keys.remove(info)
                txn.doomed_files.append(self._key_path(info.kid))
                lines.append(
                    f"removed {info.kid} (retired {format_time(cast(float, info.retired_at))}, "
                    f"retention of {self.retain_seconds}s over)"
                )
        return lines

    # -- files -------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Transaction]:
        """Change keys.json under the lock, from its state on disk, atomically."""
        self._ensure_directory()
        lock_fd = os.open(self.directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # Re-read under the lock: another process may have changed it since
            # this one last looked.
            before = self._read_metadata().keys
            txn = _Transaction(keys=list(before))
            try:
                yield txn
                if tuple(txn.keys) != before:
                    self._write_metadata(txn.keys)
            except BaseException:
                self._delete_unlisted(txn.new_files)
                raise
            # Deleted only once keys.json no longer lists them.
            for path in txn.doomed_files:
                path.unlink(missing_ok=True)
        finally:
            os.close(lock_fd)  # closing releases the flock
            with self._cache_lock:
                # Our own write must be seen even where mtimes are coarse.
                self._snapshot = None

    def _delete_unlisted(self, paths: list[Path]) -> None:
        """Delete the key files of a change that failed which keys.json, as it is on disk, does
        not list (it may, if it failed after keys.json was replaced); kept if it cannot be read."""
        if not paths:
            return
        try:
            listed = {self._key_path(info.kid) for info in self._read_metadata().keys}
        except KeyStoreError:
            return
        for path in paths:
            if path not in listed:
                path.unlink(missing_ok=True)

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            if not self.directory.is_dir():
                raise self._unusable(NotADirectoryError(20, "not a directory")) from None
            return  # an operator's existing directory keeps its permissions
        except OSError as exc:
            raise self._unusable(exc) from None
        # mkdir's mode goes through the umask; the directory holds private keys.
        self.directory.chmod(0o700)

    def _key_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.pem"

    def _write_metadata(self, keys: list[KeyInfo]) -> None:
        data = {"version": _FORMAT_VERSION, "keys": [asdict(info) for info in keys]}
        self._write_file(self._metadata_path, (json.dumps(data, indent=2) + "\n").encode())

    def _write_file(self, path: Path, content: bytes) -> None:
        # mkstemp creates the file 0600, so a private key is never readable by
        # others, not even for a moment.
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(content)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def _read_metadata(self) -> _Snapshot:
        try:
            with open(self._metadata_path, "rb") as file:
                # fstat the file actually read, so the signature matches its content
                # even if a writer replaces keys.json meanwhile.
                stat = os.fstat(file.fileno())
                raw = file.read()
        except FileNotFoundError:
            return _Snapshot(signature=None, keys=())
        except OSError as exc:
            raise self._unusable(exc) from None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return _Snapshot(signature=signature, keys=_parse_metadata(raw, self._metadata_path))

    # -- cache -------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        """keys.json, re-read only if it changed since last time (one stat)."""
        try:
            stat = os.stat(self._metadata_path)
        except FileNotFoundError:
            signature = None
        except OSError as exc:
            raise self._unusable(exc) from None
        else:
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._cache_lock:
            if self._snapshot is not None and self._snapshot.signature == signature:
                return self._snapshot
            snapshot = self._read_metadata()
            self._snapshot = snapshot
            listed = {info.kid for info in snapshot.keys}
            self._parsed = {kid: key for kid, key in self._parsed.items() if kid in listed}
            return snapshot

    def _loaded(self) -> _Material:
        """The keys themselves, for the current keys.json."""
        snapshot = self._current()
        try:
            return self._material(snapshot)
        except _MissingKeyFile:
            # A key may have been pruned between our stat and reading its file;
            # then keys.json changed too, and the fresh one no longer lists it.
            fresh = self._current()
            if fresh is snapshot:
                raise
            return self._material(fresh)

    def _material(self, snapshot: _Snapshot) -> _Material:
        with self._cache_lock:
            if snapshot.material is not None:
                return snapshot.material
            signer = None
            public: list[DictKey] = []
            # Active first, then the others oldest first.
            ordered = sorted(snapshot.keys, key=lambda info: info.state != "active")
            for info in ordered:
                key = self._parsed.get(info.kid)
                if key is None:
                    key = self._parse_key_file(info)
                    self._parsed[info.kid] = key
                if info.state == "active":
                    signer = Signer(kid=info.kid, alg=info.alg, key=key)
                # as_dict(private=False) drops d, p, q, dp, dq, qi (RFC 7518 §6).
                public.append(key.as_dict(private=False))
            keyset = KeySet([_import_public(jwk) for jwk in public]) if public else None
            document = json.dumps({"keys": public}, separators=(",", ":")).encode()
            snapshot.material = _Material(signer, tuple(public), keyset, document)
            return snapshot.material

    def _check_file(self, info: KeyInfo) -> None:
        """KeyStoreError if the private key file of ``info`` is missing or unreadable now, as
        another process would read it (not from this one's parsed keys)."""
        self._parse_key_file(info)

    def _parse_key_file(self, info: KeyInfo) -> SigningKey:
        path = self._key_path(info.kid)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise _MissingKeyFile(
                f"{path} is missing, yet {self._metadata_path} lists key {info.kid}; "
                f"{_REMEDY.format(kid=info.kid)}"
            ) from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc.strerror}; "
                                f"{_REMEDY.format(kid=info.kid)}") from None
        parameters = _parameters(info.kid, info.alg)
        try:
            if info.alg == "RS256":
                return RSAKey.import_key(pem, parameters)
            return ECKey.import_key(pem, parameters)
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyStoreError(f"{path} is not a valid {info.alg} private key ({exc}); "
                                f"{_REMEDY.format(kid=info.kid)}") from None

    def _unusable(self, exc: OSError) -> KeyStoreError:
        if isinstance(exc, NotADirectoryError) or (self.directory.exists()
                                                   and not self.directory.is_dir()):
            return KeyStoreError(f"the keys directory {self.directory} is not a directory: set "
                                 "IDP_KEYS_DIR to a directory (it is created if missing)")
        return KeyStoreError(f"cannot read {self._metadata_path}: {exc.strerror or exc}")

    def _unknown(self, kid: str) -> KeyStoreError:
        return KeyStoreError(f"no key {kid!r} in {self.directory}; `idp keys list` shows the kids")


def _check_alg(alg: str) -> None:
    if alg not in ALGORITHMS:
        raise KeyStoreError(f"unsupported algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")


def _parameters(kid: str, alg: str) -> KeyParameters:
    return {"kid": kid, "alg": alg, "use": "sig"}


def _new_key(alg: str, kid: str) -> SigningKey:
    if alg == "RS256":
        return RSAKey.generate_key(2048, _parameters(kid, alg))
    return ECKey.generate_key("P-256", _parameters(kid, alg))


def _import_public(jwk: DictKey) -> SigningKey:
    if jwk["kty"] == "RSA":
        return RSAKey.import_key(jwk)
    return ECKey.import_key(jwk)


def _parse_metadata(raw: bytes, path: Path) -> tuple[KeyInfo, ...]:
    """Validate keys.json strictly: a mistake here must not sign with the wrong key."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyStoreError(f'{path} must be an object with a "keys" list')
    keys = []
    for entry in data["keys"]:
        try:
            info = KeyInfo(
                kid=str(entry["kid"]),
                alg=str(entry["alg"]),
                state=entry["state"],
                created_at=float(entry["created_at"]),
                activated_at=_optional_time(entry.get("activated_at")),
                retired_at=_optional_time(entry.get("retired_at")),
            )
        except (KeyError, TypeError, ValueError):
            raise KeyStoreError(f"{path}: malformed key entry {entry!r}") from None
        if not _KID_PATTERN.fullmatch(info.kid):
            raise KeyStoreError(f"{path}: invalid kid {info.kid!r}")
        if info.alg not in ALGORITHMS:
            raise KeyStoreError(f"{path}: key {info.kid} has unsupported alg {info.alg!r}")
        if info.state not in _STATES:
            raise KeyStoreError(f"{path}: key {info.kid} has unknown state {info.state!r}")
        if info.state == "active" and info.activated_at is None:
            raise KeyStoreError(f"{path}: active key {info.kid} has no activated_at")
        if info.state == "retired" and info.retired_at is None:
            raise KeyStoreError(f"{path}: retired key {info.kid} has no retired_at")
        keys.append(info)
    kids = [info.kid for info in keys]
    if len(set(kids)) != len(kids):
        raise KeyStoreError(f"{path} lists a kid twice")
    active = [info.kid for info in keys if info.state == "active"]
    if len(active) > 1:
        raise KeyStoreError(
            f"{path} has several active keys ({', '.join(active)}); retire all but one"
        )
    return tuple(sorted(keys, key=lambda info: (info.created_at, info.kid)))


def _optional_time(value: Any) -> float | None:
    return None if value is None else float(value)

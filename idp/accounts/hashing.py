"""Password hashing: argon2id with the configured cost.

A hash made with other parameters still verifies, and ``needs_rehash`` tells
the caller to store a fresh hash after a successful sign-in. Hashes imported
from the previous system verify too, and are always upgraded the same way:

- PBKDF2-SHA256 in Django's format ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>``;
- bcrypt, ``$2a$``, ``$2b$`` or ``$2y$`` (modular crypt format).

One whose salt or digest its scheme cannot have (``import_problem`` says which) is
refused at import: no password would ever match it.

Such a hash is a fast digest of the password: kept as it is, a stolen database
would give it up at the legacy scheme's speed. So an import stores it wrapped
(``wrap``): its settings (scheme, cost, salt) in clear, and an argon2id hash of its
digest in place of the digest::

    $wrapped-pbkdf2_sha256$<iterations>$<salt>$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>
    $wrapped-bcrypt$2b$<cost>$<22-character salt>$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>

The argon2id part hashes the digest as the legacy hash wrote it (PBKDF2: its
base64; bcrypt: its last 31 characters). A password is checked by computing the
legacy digest with the stored settings, then verifying the argon2id part over it.
Unwrapped legacy hashes still verify (``idp accounts wrap-legacy-hashes`` wraps
those an older import left).

Checking a password against such a hash computes its legacy digest on top of the
argon2id part, which a plain argon2id hash (or an unknown identifier) does not: time
alone would tell the accounts imported from the rest. So ``verify`` takes the legacy
costs the tenant still holds (``legacy_cost`` of each such hash, e.g.
``pbkdf2_sha256$600000`` or ``bcrypt$12``) and computes one digest at each of them,
its own hash's for real and the others on a fixed dummy salt: every check then does
the same work, whatever the identifier names.

A hash names its own cost, and verifying it spends that cost on one worker
whatever the password: an imported hash claiming ``t=300`` would hold a worker
for minutes at every wrong password. So each scheme's cost is bounded (the
``MAX_*`` constants, or the configured argon2id cost when it is higher), both
parts of a wrapped hash alike: a hash beyond them is refused at import, and one
found in the database fails verification without being computed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from idp.accounts.hash_memory import arena_for

# Verified against when an account has no usable hash, so an unknown
# identifier costs the same time as a wrong password.
_DUMMY_PASSWORD = "not-a-password"  # noqa: S105 - only ever hashed, never accepted

# The costliest hashes verified, each about half a second of one core: RFC 9106's
# second recommended argon2id option (m=64 MiB, t=3, p=4), its memory taken by
# every worker checking a password at once; Django 5.2's PBKDF2 default; bcrypt's
# usual costs (10-12) and one more.
MAX_ARGON2_MEMORY_KIB = 65536
MAX_ARGON2_WORK = 65536 * 3  # memory (KiB) x passes: OWASP's five options are all below it
MAX_ARGON2_TIME_COST = 10
MAX_ARGON2_PARALLELISM = 8
MAX_PBKDF2_ITERATIONS = 1_000_000
MAX_BCRYPT_COST = 13
# Django's salts have 22 characters (12 before 3.1): a wrapped hash stays well within its column.
MAX_PBKDF2_SALT_LENGTH = 64
# The column's length (accounts.password_hash), longer than any hash of the supported
# formats with sane salts, wrapped or not.
MAX_HASH_LENGTH = 255

_PBKDF2 = "pbkdf2_sha256$"
_BCRYPT = ("$2a$", "$2b$", "$2y$")
_ARGON2ID = "$argon2id$"
_WRAPPED = "$wrapped-"
# bcrypt's settings start with "$": the wrapped format names the scheme before them.
_BCRYPT_LABEL = "bcrypt"
# The salts of the digests computed so that every check costs the same (``verify``).
_DUMMY_PBKDF2_SALT = "equal-work-salt"
_DUMMY_BCRYPT_SALT = "equalworkequalworkeque"  # bcrypt's 22 characters, the last one it accepts
# bcrypt's own base64: a salt of 22 characters (16 bytes), a digest of 31 (23 bytes). Their last
# character carries fewer bits, so only some can end them: bcrypt refuses any other salt, and
# never writes any other digest.
_BCRYPT_SALT = re.compile(r"[./A-Za-z0-9]{21}[.Oeu]")
_BCRYPT_DIGEST = re.compile(r"[./A-Za-z0-9]{30}[.CGKOSWaeimquy26]")
_PBKDF2_DIGEST_BYTES = 32  # SHA-256's, as Django stores it


@dataclass(frozen=True)
class ImportProblem:
    """Why a hash cannot be imported: ``costly`` when it reads but costs more than the bounds (a
    sign-in would hold a worker that long); otherwise no password could be checked against it."""

    reason: str
    costly: bool = False


@dataclass(frozen=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int):
        self._argon2 = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        self._dummy_hash = self._argon2.hash(_DUMMY_PASSWORD)
        # The provider's own hashes are checked in memory kept between checks (its module).
        self._arena = arena_for(memory_cost)
        # The provider's own hashes always verify, whatever cost the operator chose.
        self._max_memory = max(MAX_ARGON2_MEMORY_KIB, memory_cost)
        self._max_time = max(MAX_ARGON2_TIME_COST, time_cost)
        self._max_work = max(MAX_ARGON2_WORK, memory_cost * time_cost)
        self._max_lanes = max(MAX_ARGON2_PARALLELISM, parallelism)

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def import_problem(self, stored_hash: str) -> ImportProblem | None:
        """Why ``verify`` could not check this hash of the previous system (or argon2id), if so."""
        unsupported = ImportProblem("no supported hash (pbkdf2_sha256$…, $2a$/$2b$/$2y$…, "
                                    "$argon2id$…, $wrapped-…)")
        if len(stored_hash) > MAX_HASH_LENGTH:
            return unsupported
        wrapped = _unwrap(stored_hash)
        if wrapped is not None or _split_legacy(stored_hash) is None:
            # An argon2id hash, alone or wrapping a legacy digest: its parameters must read.
            argon2_part = wrapped[1] if wrapped is not None else stored_hash
            try:
                if not argon2_part.startswith(_ARGON2ID):
                    return unsupported
                extract_parameters(argon2_part)
            except (InvalidHashError, ValueError):
                return unsupported
        costly = self._cost_problem(stored_hash)
        if costly:
            return ImportProblem(costly, costly=True)
        unmatchable = _unmatchable(stored_hash)
        return ImportProblem(unmatchable) if unmatchable else None

    def wrap(self, stored_hash: str) -> str:
        """A hash of the previous system, stored as argon2id over its digest (the module's
        docstring); an argon2id hash, already wrapped or not, as it is. Check it with
        ``import_problem`` first: nothing is verified here, and no password is needed."""
        legacy = _split_legacy(stored_hash)
        if legacy is None:
            return stored_hash
        settings, digest = legacy
        label = _BCRYPT_LABEL if settings.startswith(_BCRYPT) else ""
        return f"{_WRAPPED}{label}{settings}{self._argon2.hash(digest)}"

    @staticmethod
    def is_unwrapped_legacy(stored_hash: str | None) -> bool:
        """A hash of the previous system kept as it was imported (``wrap`` would wrap it)."""
        return bool(stored_hash) and _split_legacy(stored_hash or "") is not None

    def importable(self, stored_hash: str) -> bool:
        """A hash of the previous system (or argon2id) that ``verify`` can check."""
        return self.import_problem(stored_hash) is None

    def verify(self, stored_hash: str | None, password: str, *,
               legacy_costs: Collection[str] = ()) -> Verification:
        """Check a password; takes the same time whether or not a hash exists.

        ``legacy_costs``: the ``legacy_cost`` of every legacy hash the identifier could
        name; a digest is computed at each of them but the stored hash's own (computed
        for real), so that imported and other accounts, and unknown identifiers, cost
        the same. A hash costlier than the bounds is a failure, checked against the dummy
        hash instead, so that it neither holds the worker nor answers faster.
        """
        own = legacy_cost(stored_hash or "")
        for cost in set(legacy_costs) - {own}:
            settings = _dummy_settings(cost)
            if settings:
                _legacy_digest(settings, password)
        if not stored_hash or len(stored_hash) > MAX_HASH_LENGTH or self._cost_problem(stored_hash):
            self._burn(password)
            return Verification(ok=False)
        wrapped = _unwrap(stored_hash)
        split = wrapped or _split_legacy(stored_hash)
        if split is not None:
            settings, kept = split  # kept: the argon2id part if wrapped, else the digest
            digest = _legacy_digest(settings, password)
            if digest is None:  # settings the legacy scheme refuses (a salt it cannot read)
                self._burn(password)
                return Verification(ok=False)
            ok = (self._matches(kept, digest) if wrapped is not None
                  else hmac.compare_digest(digest, kept))
            return Verification(ok=ok, needs_rehash=True)
        if not self._matches(stored_hash, password):
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._argon2.check_needs_rehash(stored_hash))

    def _matches(self, argon2_hash: str, secret: str) -> bool:
        """argon2 verification; a hash it cannot read costs the dummy one and fails."""
        matched = self._arena.matches(argon2_hash, secret.encode())
        if matched is not None:
            return matched
        try:
            self._argon2.verify(argon2_hash, secret)
        except InvalidHashError:
            self._burn(secret)
            return False
        except VerificationError:
            return False
        return True

    def _cost_problem(self, stored_hash: str) -> str:
        """What makes this hash cost more than the bounds ("" when nothing, or not parsable)."""
        wrapped = _unwrap(stored_hash)
        if wrapped is not None:
            return _legacy_cost_problem(wrapped[0]) or self._argon2_cost_problem(wrapped[1])
        return _legacy_cost_problem(stored_hash) or self._argon2_cost_problem(stored_hash)

    def _argon2_cost_problem(self, stored_hash: str) -> str:
        if not stored_hash.startswith("$argon2"):
            return ""
        try:
            parameters = extract_parameters(stored_hash)
        except (InvalidHashError, ValueError):
            return ""  # verify's own parser refuses it, at the cost of the dummy hash
        memory, passes, lanes = (parameters.memory_cost, parameters.time_cost,
                                 parameters.parallelism)
        if memory > self._max_memory:
            return (f"the argon2 hash needs m={memory} KiB of memory; at most "
                    f"{self._max_memory} are accepted")
        if passes > self._max_time or memory * passes > self._max_work:
            return (f"the argon2 hash costs t={passes} passes over m={memory} KiB; at most "
                    f"{self._max_work} KiB-passes and t={self._max_time} are accepted")
        if lanes > self._max_lanes:
            return f"the argon2 hash has p={lanes} lanes; at most {self._max_lanes} are accepted"
        return ""

    def _burn(self, password: str) -> None:
        self._matches(self._dummy_hash, password)  # always readable: made by __init__


def _legacy_cost_problem(stored_hash: str) -> str:
    """What makes a legacy hash (or its settings) cost more than the bounds ("" when nothing)."""
    if stored_hash.startswith(_PBKDF2):
        iterations = stored_hash.split("$")[1]
        if iterations.isdigit() and int(iterations) > MAX_PBKDF2_ITERATIONS:
            return (f"the PBKDF2 hash asks {int(iterations)} iterations; at most "
                    f"{MAX_PBKDF2_ITERATIONS} are accepted")
    elif stored_hash.startswith(_BCRYPT):
        cost = stored_hash[4:6]
        if cost.isdigit() and int(cost) > MAX_BCRYPT_COST:
            return f"the bcrypt hash has cost {int(cost)}; at most {MAX_BCRYPT_COST} is accepted"
    return ""


def _unmatchable(stored_hash: str) -> str:
    """What keeps a legacy hash (wrapped or not) that reads from ever matching a password: a
    salt or digest its scheme cannot have ("" when nothing)."""
    wrapped = _unwrap(stored_hash)
    digest: str | None
    if wrapped is not None:
        settings, digest = wrapped[0], None  # only its settings: the digest is under argon2id
    else:
        legacy = _split_legacy(stored_hash)
        if legacy is None:
            return ""
        settings, digest = legacy
    if settings.startswith(_BCRYPT):
        if not _BCRYPT_SALT.fullmatch(settings[7:]) or (
                digest is not None and not _BCRYPT_DIGEST.fullmatch(digest)):
            return ("no usable hash: its bcrypt salt or digest is not bcrypt's base64 "
                    "(./A-Za-z0-9, 22 and 31 characters), so no password would match it")
    elif digest is not None and not _is_pbkdf2_digest(digest):
        return (f"no usable hash: its PBKDF2 digest is not the base64 of {_PBKDF2_DIGEST_BYTES} "
                "bytes (44 characters), so no password would match it")
    return ""


def _is_pbkdf2_digest(digest: str) -> bool:
    """The base64 of a SHA-256 digest, written as ``_legacy_digest`` writes it."""
    try:
        raw = base64.b64decode(digest, validate=True)
    except binascii.Error:
        return False
    return len(raw) == _PBKDF2_DIGEST_BYTES and base64.b64encode(raw).decode() == digest


def legacy_cost(stored_hash: str) -> str:
    """What checking a password against this legacy hash (wrapped or not) costs on top of
    argon2id: ``pbkdf2_sha256$<iterations>`` or ``bcrypt$<cost>``; "" for any other hash."""
    split = _unwrap(stored_hash) or _split_legacy(stored_hash)
    if split is None:
        return ""
    settings = split[0]
    if settings.startswith(_PBKDF2):
        return f"{_PBKDF2}{settings.split('$')[1]}"
    return f"{_BCRYPT_LABEL}${settings[4:6]}"


def _dummy_settings(cost: str) -> str:
    """Settings of ``legacy_cost`` ``cost`` on a fixed salt; "" for a cost that does not read."""
    scheme, _, amount = cost.partition("$")
    if not amount.isdigit():
        return ""
    if scheme == _PBKDF2.rstrip("$"):
        return f"{_PBKDF2}{int(amount)}${_DUMMY_PBKDF2_SALT}"
    if scheme == _BCRYPT_LABEL and len(amount) == 2:
        return f"$2b${amount}${_DUMMY_BCRYPT_SALT}"
    return ""


def _settings_are_sound(settings: str) -> bool:
    """A legacy hash's settings (scheme, cost, salt) of the right shape."""
    if settings.startswith(_PBKDF2):
        parts = settings.split("$")
        return (len(parts) == 3 and parts[1].isdigit() and int(parts[1]) >= 1
                and 0 < len(parts[2]) <= MAX_PBKDF2_SALT_LENGTH)
    if settings.startswith(_BCRYPT):
        return len(settings) == 29 and settings[4:6].isdigit() and settings[6] == "$"
    return False


def _split_legacy(stored_hash: str) -> tuple[str, str] | None:
    """A hash of the previous system as (its settings, its digest); None if it is not one."""
    if stored_hash.startswith(_PBKDF2):
        settings, _, digest = stored_hash.rpartition("$")
    elif stored_hash.startswith(_BCRYPT) and len(stored_hash) == 60:
        settings, digest = stored_hash[:29], stored_hash[29:]
    else:
        return None
    return (settings, digest) if digest and _settings_are_sound(settings) else None


def _unwrap(stored_hash: str) -> tuple[str, str] | None:
    """A wrapped hash as (the legacy settings, the argon2id hash of the legacy digest)."""
    if not stored_hash.startswith(_WRAPPED):
        return None
    head, found, tail = stored_hash[len(_WRAPPED):].partition(_ARGON2ID)
    labelled = head.startswith(_BCRYPT_LABEL + "$")
    settings = head[len(_BCRYPT_LABEL):] if labelled else head
    if not found or labelled != settings.startswith(_BCRYPT) or not _settings_are_sound(settings):
        return None
    return settings, _ARGON2ID + tail


def _legacy_digest(settings: str, password: str) -> str | None:
    """The digest the previous system stored for ``password`` with these settings, as it
    wrote it; None when the settings cannot be used (beyond the bounds: never computed)."""
    if settings.startswith(_PBKDF2):
        _algorithm, iterations, salt = settings.split("$")
        if not 1 <= int(iterations) <= MAX_PBKDF2_ITERATIONS:
            return None
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
        return base64.b64encode(computed).decode()
    if int(settings[4:6]) > MAX_BCRYPT_COST:
        return None
    try:
        # bcrypt reads at most 72 bytes; longer passwords were cut the same way when hashed.
        return bcrypt.hashpw(password.encode()[:72], settings.encode()).decode()[29:]
    except ValueError:
        return None

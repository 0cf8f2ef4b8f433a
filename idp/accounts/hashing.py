"""Password hashing: argon2id with the configured cost.

A hash made with other parameters still verifies, and ``needs_rehash`` tells
the caller to store a fresh hash after a successful sign-in. Hashes imported
from the previous system verify too, and are always upgraded the same way:

- PBKDF2-SHA256 in Django's format ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>``;
- bcrypt, ``$2a$``, ``$2b$`` or ``$2y$`` (modular crypt format).

A hash names its own cost, and verifying it spends that cost on one worker
whatever the password: an imported hash claiming ``t=300`` would hold a worker
for minutes at every wrong password. So each scheme's cost is bounded (the
``MAX_*`` constants, or the configured argon2id cost when it is higher): a hash
beyond them is refused at import, and one found in the database fails
verification without being computed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

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
# Longer than any hash of the supported formats with sane salts.
MAX_HASH_LENGTH = 512


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
        # The provider's own hashes always verify, whatever cost the operator chose.
        self._max_memory = max(MAX_ARGON2_MEMORY_KIB, memory_cost)
        self._max_time = max(MAX_ARGON2_TIME_COST, time_cost)
        self._max_work = max(MAX_ARGON2_WORK, memory_cost * time_cost)
        self._max_lanes = max(MAX_ARGON2_PARALLELISM, parallelism)

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def import_problem(self, stored_hash: str) -> str | None:
        """Why ``verify`` could not check this hash of the previous system (or argon2id), if so."""
        unsupported = "no supported hash (pbkdf2_sha256$…, $2a$/$2b$/$2y$…, $argon2id$…)"
        if len(stored_hash) > MAX_HASH_LENGTH:
            return unsupported
        legacy = _legacy_verifier(stored_hash)
        if legacy is _verify_pbkdf2_sha256:
            parts = stored_hash.split("$")
            if len(parts) != 4 or not parts[1].isdigit() or not all(parts[2:]) \
                    or int(parts[1]) < 1:
                return unsupported
        elif legacy is _verify_bcrypt:
            if len(stored_hash) != 60 or not stored_hash[4:6].isdigit():
                return unsupported
        elif not stored_hash.startswith("$argon2id$"):
            return unsupported
        else:
            try:
                extract_parameters(stored_hash)
            except (InvalidHashError, ValueError):
                return unsupported
        return self._cost_problem(stored_hash) or None

    def importable(self, stored_hash: str) -> bool:
        """A hash of the previous system (or argon2id) that ``verify`` can check."""
        return self.import_problem(stored_hash) is None

    def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check a password; takes the same time whether or not a hash exists.

        A hash costlier than the bounds is a failure, checked against the dummy
        hash instead, so that it neither holds the worker nor answers faster.
        """
        if not stored_hash or len(stored_hash) > MAX_HASH_LENGTH or self._cost_problem(stored_hash):
            self._burn(password)
            return Verification(ok=False)
        legacy = _legacy_verifier(stored_hash)
        if legacy is not None:
            return Verification(ok=legacy(stored_hash, password), needs_rehash=True)
        try:
            self._argon2.verify(stored_hash, password)
        except InvalidHashError:
            self._burn(password)
            return Verification(ok=False)
        except VerificationError:
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._argon2.check_needs_rehash(stored_hash))

    def _cost_problem(self, stored_hash: str) -> str:
        """What makes this hash cost more than the bounds ("" when nothing, or not parsable)."""
        if stored_hash.startswith("pbkdf2_sha256$"):
            iterations = stored_hash.split("$")[1]
            if iterations.isdigit() and int(iterations) > MAX_PBKDF2_ITERATIONS:
                return (f"the PBKDF2 hash asks {int(iterations)} iterations; at most "
                        f"{MAX_PBKDF2_ITERATIONS} are accepted")
            return ""
        if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
            cost = stored_hash[4:6]
            if cost.isdigit() and int(cost) > MAX_BCRYPT_COST:
                return f"the bcrypt hash has cost {int(cost)}; at most {MAX_BCRYPT_COST} is accepted"
            return ""
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
        with contextlib.suppress(VerificationError):
            self._argon2.verify(self._dummy_hash, password)


def _verify_pbkdf2_sha256(stored_hash: str, password: str) -> bool:
    try:
        _algorithm, iterations, salt, digest = stored_hash.split("$", 3)
        rounds = int(iterations)
    except ValueError:
        return False
    if not 1 <= rounds <= MAX_PBKDF2_ITERATIONS:
        return False
    computed = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds)
    return hmac.compare_digest(base64.b64encode(computed).decode(), digest)


def _verify_bcrypt(stored_hash: str, password: str) -> bool:
    try:
        # bcrypt reads at most 72 bytes; longer passwords were cut the same way when hashed.
        return bcrypt.checkpw(password.encode()[:72], stored_hash.encode())
    except ValueError:
        return False


def _legacy_verifier(stored_hash: str):
    if stored_hash.startswith("pbkdf2_sha256$"):
        return _verify_pbkdf2_sha256
    if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
        return _verify_bcrypt
    return None

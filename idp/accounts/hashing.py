"""Password hashing: argon2id with the configured cost.

A hash made with other parameters still verifies, and ``needs_rehash`` tells
the caller to store a fresh hash after a successful sign-in. Hashes imported
from the previous system verify too, and are always upgraded the same way:

- PBKDF2-SHA256 in Django's format ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>``;
- bcrypt, ``$2a$``, ``$2b$`` or ``$2y$`` (modular crypt format).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

# Verified against when an account has no usable hash, so an unknown
# identifier costs the same time as a wrong password.
_DUMMY_PASSWORD = "not-a-password"  # noqa: S105 - only ever hashed, never accepted


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

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    @staticmethod
    def importable(stored_hash: str) -> bool:
        """A hash of the previous system (or argon2id) that ``verify`` can check."""
        if _legacy_verifier(stored_hash) is _verify_pbkdf2_sha256:
            parts = stored_hash.split("$")
            return len(parts) == 4 and parts[1].isdigit() and 1 <= int(parts[1]) <= 10_000_000 \
                and all(parts[2:])
        if _legacy_verifier(stored_hash) is _verify_bcrypt:
            return len(stored_hash) == 60
        return stored_hash.startswith("$argon2id$")

    def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check a password; takes the same time whether or not a hash exists."""
        if not stored_hash:
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

    def _burn(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self._argon2.verify(self._dummy_hash, password)


def _verify_pbkdf2_sha256(stored_hash: str, password: str) -> bool:
    try:
        _algorithm, iterations, salt, digest = stored_hash.split("$", 3)
        rounds = int(iterations)
    except ValueError:
        return False
    if not 1 <= rounds <= 10_000_000:
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

"""Password hashing: argon2id with the configured cost.

A hash made with other parameters still verifies, and ``needs_rehash`` tells
the caller to store a fresh hash after a successful sign-in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

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

    def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check a password; takes the same time whether or not a hash exists."""
        if not stored_hash:
            self._burn(password)
            return Verification(ok=False)
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

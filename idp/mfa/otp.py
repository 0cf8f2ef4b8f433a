"""One-time codes: six digits from a CSPRNG, stored only as a keyed hash bound to one challenge."""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_LENGTH = 6


def generate_code() -> str:
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def code_digest(secret: bytes, challenge_id: str, code: str) -> str:
    """HMAC of the code, keyed by the server secret and bound to its challenge.

    The same code under another challenge gives another digest, so a code
    cannot be replayed against a different sign-in attempt.
    """
    return hmac.new(secret, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def normalize_code(raw: str) -> str | None:
    """Digits only (members paste "123 456" or "123-456"); None when it cannot be a code."""
    digits = "".join(ch for ch in raw if ch.isdigit() and ch.isascii())
    stripped = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    if len(digits) != CODE_LENGTH or len(stripped) != CODE_LENGTH:
        return None
    return digits


def codes_match(secret: bytes, challenge_id: str, code: str, digest: str) -> bool:
    return hmac.compare_digest(code_digest(secret, challenge_id, code), digest)

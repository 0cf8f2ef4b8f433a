"""A software WebAuthn authenticator: real, signed responses as a browser would post them.

It holds one EC P-256 credential (COSE alg -7) and answers the provider's
options with "none" attestation (WebAuthn §8.7) at registration and an ECDSA
signature over authenticatorData ‖ SHA-256(clientDataJSON) at sign-in (§6.3.3).
Every part a test may want wrong can be overridden: origin, RP ID, user
verification, signature counter, challenge.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost"  # the test app's base URL
# authenticatorData flags (WebAuthn §6.1)
USER_PRESENT, USER_VERIFIED, BACKUP_ELIGIBLE, BACKED_UP, ATTESTED = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftwareAuthenticator:
    def __init__(self, *, attachment: str = "platform", transports: tuple[str, ...] = ("internal",),
                 synced: bool = False):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.attachment = attachment
        self.transports = list(transports)
        self.synced = synced
        self.sign_count = 0
        self.user_handle: str | None = None

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # RFC 9053 §7.1.1: kty EC2, alg ES256, crv P-256, x, y
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _authenticator_data(self, rp_id: str, *, user_verified: bool, count: int,
                            attested: bool = False) -> bytes:
        flags = USER_PRESENT | (USER_VERIFIED if user_verified else 0)
        if self.synced:
            flags |= BACKUP_ELIGIBLE | BACKED_UP
        if attested:
            flags |= ATTESTED
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
            data += self._cose_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def register(self, options: dict, *, origin: str = ORIGIN, rp_id: str | None = None,
                 user_verified: bool = True, challenge: str | None = None) -> dict:
        """The PublicKeyCredential that navigator.credentials.create(options) resolves to."""
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        auth_data = self._authenticator_data(rp_id or options["rp"]["id"], user_verified=user_verified,
                                             count=self.sign_count, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id, "rawId": self.id, "type": "public-key",
            "authenticatorAttachment": self.attachment, "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                         "transports": self.transports},
        }

    def sign(self, options: dict, *, origin: str = ORIGIN, rp_id: str | None = None,
             user_verified: bool = True, count: int | None = None) -> dict:
        """The PublicKeyCredential that navigator.credentials.get(options) resolves to."""
        self.sign_count = self.sign_count + 1 if count is None else count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._authenticator_data(rp_id or options["rpId"], user_verified=user_verified,
                                             count=self.sign_count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id, "rawId": self.id, "type": "public-key",
            "authenticatorAttachment": self.attachment, "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": self.user_handle},
        }

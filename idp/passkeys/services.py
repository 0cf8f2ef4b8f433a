"""Passkey ceremonies (WebAuthn Level 2 §7): register one, sign in with one, and keep the list.

A ceremony's challenge lives in the store for ``CEREMONY_TTL`` seconds under a
random ceremony id that the caller keeps (in the browser session); it is taken
(read and deleted) by the first response, so it works once whatever the
outcome. Verification is py_webauthn's; this module adds what the library
leaves to the relying party: which tenant and account the credential belongs
to, the user handle, and clone detection from the signature counter (§6.1.1).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp import events
from idp.accounts.models import Account
from idp.accounts.services import SignInContext, record_sign_in
from idp.db import utcnow
from idp.passkeys.models import HARDWARE_KEY, SOFTWARE_KEY, Passkey
from idp.store import Store
from idp.tenancy import Tenant

# Seconds a ceremony may take, from the options to the response (also the browser's timeout).
CEREMONY_TTL = 300
NAME_MAX_LENGTH = 64
# A browser's JSON for one credential is a few hundred bytes to a few kilobytes.
RESPONSE_MAX_LENGTH = 16_384
# Transports of a roaming security key; "hybrid" (a phone) and "internal" are not.
SECURITY_KEY_TRANSPORTS = {"usb", "nfc", "ble", "smart-card"}
# What the library may raise on a response it cannot parse, beyond its own exceptions.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)


class PasskeyError(Exception):
    """Base of the passkey failures; ``reason`` is for the audit log, never for the member."""

    reason = "rejected"


class CeremonyExpired(PasskeyError):
    """No live challenge: too old, already answered, or never issued here."""

    reason = "expired"


class PasskeyRejected(PasskeyError):
    """The response does not verify: malformed, wrong origin or RP ID, no user verification…"""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownPasskey(PasskeyError):
    """No such passkey in this tenant (removed, another tenant's, or never registered)."""

    reason = "unknown"


class PasskeyAlreadyRegistered(PasskeyError):
    reason = "duplicate"


class PasskeyBlocked(PasskeyError):
    """The passkey's counter went backwards (now or before): it may be a clone."""

    reason = "blocked"


def key_kind(attachment: Any, transports: list[str], multi_device: bool) -> str:
    """``hwk`` for a roaming security key whose private key cannot leave it, ``swk`` otherwise.

    A cross-platform authenticator reached over USB, NFC or BLE and not backed up
    (a single-device credential) holds its key in dedicated hardware. A platform
    authenticator, a phone over "hybrid", or a synced passkey may keep or copy
    the key in software the provider cannot vouch for: ``swk``, the honest claim.
    """
    roaming = attachment == "cross-platform" and bool(transports)
    if roaming and set(transports) <= SECURITY_KEY_TRANSPORTS and not multi_device:
        return HARDWARE_KEY
    return SOFTWARE_KEY


def parse_response(raw: str) -> dict[str, Any]:
    """The browser's PublicKeyCredential as JSON: an object with an id, or PasskeyRejected."""
    if not raw:
        raise PasskeyRejected("missing")
    if len(raw) > RESPONSE_MAX_LENGTH:
        raise PasskeyRejected("too long")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise PasskeyRejected("malformed") from None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise PasskeyRejected("malformed")
    return value


def user_handle(account_id: str) -> str:
    """The WebAuthn user.id, base64url: the account id, random and meaningless outside its tenant."""
    return bytes_to_base64url(account_id.encode())


class Passkeys:
    """The passkeys of one database session; the caller commits."""

    def __init__(self, db: Session, store: Store):
        self.db = db
        self.store = store

    # Ceremonies

    def _begin(self, purpose: str, tenant: Tenant, account_id: str | None,
               challenge: bytes, previous: str | None) -> str:
        if previous:
            self.store.delete(self._key(purpose, previous))
        ceremony = secrets.token_urlsafe(24)
        state = {"tenant": tenant.slug, "account": account_id, "challenge": bytes_to_base64url(challenge)}
        self.store.set(self._key(purpose, ceremony), json.dumps(state), CEREMONY_TTL)
        return ceremony

    def _take(self, purpose: str, tenant: Tenant, ceremony: str | None,
              account_id: str | None = None) -> bytes:
        raw = self.store.take(self._key(purpose, ceremony)) if ceremony else None
        state = json.loads(raw) if raw else None
        if state is None or state["tenant"] != tenant.slug or state["account"] != account_id:
            raise CeremonyExpired()
        return base64url_to_bytes(state["challenge"])

    @staticmethod
    def _key(purpose: str, ceremony: str) -> str:
        return f"passkey:{purpose}:{ceremony}"

    def registration_options(self, tenant: Tenant, account: Account,
                             previous: str | None = None) -> tuple[str, dict[str, Any]]:
        """Options for navigator.credentials.create() and the ceremony id to answer with."""
        options = generate_registration_options(
            rp_id=tenant.passkeys.rp_id,
            rp_name=f"{tenant.brand} — {tenant.portal_name}",
            user_id=account.id.encode(),
            user_name=(account.email if tenant.logs_in_with_email else None)
            or account.member_number or account.id,
            user_display_name=f"{account.given_name} {account.family_name}",
            timeout=CEREMONY_TTL * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                                 for p in self.list(account.id)],
        )
        ceremony = self._begin("create", tenant, account.id, options.challenge, previous)
        return ceremony, options_to_json_dict(options)

    def register(self, tenant: Tenant, account: Account, ceremony: str | None, raw_response: str,
                 name: str) -> Passkey:
        """Verify the new credential (WebAuthn §7.1) and keep it under the member's name for it."""
        challenge = self._take("create", tenant, ceremony, account.id)
        response = parse_response(raw_response)
        try:
            verified = verify_registration_response(
                credential=response, expected_challenge=challenge,
                expected_rp_id=tenant.passkeys.rp_id, expected_origin=list(tenant.passkeys.origins),
                require_user_verification=True,
            )
        except MALFORMED as exc:
            raise PasskeyRejected(_reason(exc)) from None
        credential_id = bytes_to_base64url(verified.credential_id)
        if self.db.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)):
            raise PasskeyAlreadyRegistered()
        transports = response["response"].get("transports")
        transports = [t for t in transports if isinstance(t, str)][:8] if isinstance(transports, list) else []
        passkey = Passkey(
            tenant=tenant.slug, account_id=account.id, credential_id=credential_id,
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            key_kind=key_kind(response.get("authenticatorAttachment"), transports,
                              verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE),
            transports=transports, aaguid=verified.aaguid, name=name.strip()[:NAME_MAX_LENGTH],
            created_at=utcnow(),
        )
        self.db.add(passkey)
        self.db.flush()
        events.record_event(self.db, events.PASSKEY_ADDED, tenant=tenant.slug, account_id=account.id,
                            passkey=passkey.id, kind=passkey.key_kind)
        return passkey

    def authentication_options(self, tenant: Tenant, previous: str | None = None
                               ) -> tuple[str, dict[str, Any]]:
        """Options for navigator.credentials.get(): no account named, the passkey says who."""
        options = generate_authentication_options(
            rp_id=tenant.passkeys.rp_id, timeout=CEREMONY_TTL * 1000,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        ceremony = self._begin("get", tenant, None, options.challenge, previous)
        return ceremony, options_to_json_dict(options)

    def authenticate(self, tenant: Tenant, ceremony: str | None, raw_response: str,
                     context: SignInContext) -> tuple[Passkey, Account]:
        """The passkey that signed this challenge and its account (WebAuthn §7.2).

        On success its counter and last use are updated and the sign-in is audited.
        A counter that did not move forward (§6.1.1) blocks the passkey for good and
        raises PasskeyBlocked; the caller commits so that the block stays.
        """
        challenge = self._take("get", tenant, ceremony)
        response = parse_response(raw_response)
        passkey = self.db.scalar(select(Passkey).where(
            Passkey.credential_id == response["id"], Passkey.tenant == tenant.slug))
        account = self.db.get(Account, passkey.account_id) if passkey is not None else None
        if passkey is None or account is None or not account.is_active:
            raise UnknownPasskey()
        if passkey.blocked_at is not None:
            raise PasskeyBlocked()
        try:
            verified = verify_authentication_response(
                credential=response, expected_challenge=challenge,
                expected_rp_id=tenant.passkeys.rp_id, expected_origin=list(tenant.passkeys.origins),
                credential_public_key=passkey.public_key,
                # Counted here after the signature is checked: a regression must block the
                # passkey, which the library's own check (a plain failure) would not say.
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except MALFORMED as exc:
            raise PasskeyRejected(_reason(exc)) from None
        handle = response["response"].get("userHandle")
        if handle and handle != user_handle(passkey.account_id):
            raise PasskeyRejected("user handle")
        count = verified.new_sign_count
        if (count or passkey.sign_count) and count <= passkey.sign_count:
            passkey.blocked_at = utcnow()
            events.record_event(self.db, events.PASSKEY_CLONED, tenant=tenant.slug,
                                account_id=passkey.account_id, passkey=passkey.id,
                                stored_count=passkey.sign_count, received_count=count)
            raise PasskeyBlocked()
        passkey.sign_count = count
        passkey.last_used_at = utcnow()
        if verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE:
            passkey.key_kind = SOFTWARE_KEY  # it became a synced passkey
        record_sign_in(self.db, tenant, account, context, method="passkey")
        return passkey, account

    # The member's list

    def list(self, account_id: str) -> list[Passkey]:
        return list(self.db.scalars(
            select(Passkey).where(Passkey.account_id == account_id).order_by(Passkey.created_at)))

    def get(self, account_id: str, passkey_id: str) -> Passkey | None:
        passkey = self.db.get(Passkey, passkey_id)
        return passkey if passkey is not None and passkey.account_id == account_id else None

    def rename(self, passkey: Passkey, name: str) -> None:
        passkey.name = name.strip()[:NAME_MAX_LENGTH]
        events.record_event(self.db, events.PASSKEY_RENAMED, tenant=passkey.tenant,
                            account_id=passkey.account_id, passkey=passkey.id)

    def remove(self, passkey: Passkey) -> None:
        """Forget a passkey; the password still signs in, so no member is ever locked out."""
        self.db.execute(delete(Passkey).where(Passkey.id == passkey.id))
        events.record_event(self.db, events.PASSKEY_REMOVED, tenant=passkey.tenant,
                            account_id=passkey.account_id, passkey=passkey.id)


def _reason(exc: Exception) -> str:
    """A short, secret-free reason for the audit log (the library's messages name no secret)."""
    return f"{type(exc).__name__}: {exc}"[:200]

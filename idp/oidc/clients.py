"""Client registration by operators (SPEC §8): checks, secret issuance, audit.

Used by `idp clients …` and the demo. Only the digest of a client secret is
stored; the secret itself is returned once, to be handed to the relying party.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from idp import events
from idp.db import Statements, from_row
from idp.identifiers import has_invisible
from idp.oidc.models import AUTH_METHODS, SUPPORTED_SCOPES, Client, token_digest
from idp.tenancy import Tenant

DEFAULT_SCOPES = ("openid", "profile", "email", "phone", "member", "offline_access")
DEFAULT_AUTH_METHOD = "client_secret_basic"
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Plain http is tolerated only towards the developer's own machine (RFC 8252 7.3).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{2,63}$")
MAX_NAME_LENGTH = 100
MAX_URI_LENGTH = 2000  # the width of authorization_codes.redirect_uri
# JWK members only a private or symmetric key carries (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037 2).
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
ASYMMETRIC_KEY_TYPES = ("RSA", "EC", "OKP")
MIN_RSA_BITS = 2048
# A refresh token lifetime an operator may set per client: an hour to a year.
REFRESH_TTL_BOUNDS = (3600, 366 * 24 * 3600)


class ClientRegistrationError(ValueError):
    """The registration request is not acceptable; the message says why, for an operator."""


def generate_client_id(tenant: Tenant) -> str:
    return f"{tenant.slug}-{secrets.token_hex(8)}"


def check_redirect_uri(uri: str, *, label: str = "redirect URI") -> str:
    """An absolute https URI without fragment; plain http only on loopback (development)."""
    uri = uri.strip()
    if not uri:
        raise ClientRegistrationError(f"{label} is empty")
    if len(uri) > MAX_URI_LENGTH:
        raise ClientRegistrationError(f"{label} is longer than {MAX_URI_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise ClientRegistrationError(f"{label} {uri!r} contains spaces or control characters")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError:
        raise ClientRegistrationError(f"{label} {uri!r} is not a valid URI") from None
    if not parts.scheme or not parts.netloc or not parts.hostname:
        raise ClientRegistrationError(f"{label} {uri!r} must be absolute (scheme and host)")
    # OAuth 2.0 (RFC 6749 3.1.2): the redirection endpoint URI MUST NOT include a fragment.
    if "#" in uri:
        raise ClientRegistrationError(f"{label} {uri!r} must not contain a fragment (#)")
    if parts.username is not None or parts.password is not None:
        raise ClientRegistrationError(f"{label} {uri!r} must not contain credentials")
    if "*" in parts.netloc:
        raise ClientRegistrationError(
            f"{label} {uri!r} contains a wildcard; redirect URIs are matched exactly"
        )
    scheme = parts.scheme.lower()
    if scheme == "https":
        return uri
    if scheme == "http" and parts.hostname.lower() in LOOPBACK_HOSTS:
        return uri
    if scheme == "http":
        raise ClientRegistrationError(
            f"{label} {uri!r} must use https (plain http is allowed only for "
            "localhost, 127.0.0.1 or [::1] during development)"
        )
    raise ClientRegistrationError(f"{label} {uri!r} must use https, not {parts.scheme!r}")


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """Known scopes only, ``openid`` required; order kept, duplicates dropped."""
    wanted = _unique(s for value in scopes for s in value.split())
    unknown = [s for s in wanted if s not in SUPPORTED_SCOPES]
    if unknown:
        raise ClientRegistrationError(
            f"unsupported scope(s): {', '.join(unknown)} "
            f"(supported: {', '.join(SUPPORTED_SCOPES)})"
        )
    if "openid" not in wanted:
        raise ClientRegistrationError("the scopes must include openid")
    return wanted


def parse_jwks(text: str) -> dict[str, Any]:
    """Read a JWKS document (JSON text) and check it with ``check_jwks``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ClientRegistrationError(f"the JWKS is not valid JSON: {exc}") from None
    return check_jwks(document)


def check_jwks(document: Any) -> dict[str, Any]:
    """A JWKS of asymmetric public signing keys; any private or symmetric key is refused.

    The provider stores it to verify private_key_jwt assertions (RFC 7523 3), so
    a private key here would be a key the client should never have sent anyone.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ClientRegistrationError('the JWKS must be a JSON object with a "keys" list')
    keys = document["keys"]
    if not keys:
        raise ClientRegistrationError("the JWKS has no keys")
    kids: set[str] = set()
    for index, key in enumerate(keys):
        name = f"key #{index + 1}"
        if not isinstance(key, dict):
            raise ClientRegistrationError(f"{name} of the JWKS is not a JSON object")
        if isinstance(key.get("kid"), str):
            name = f"key {key['kid']!r}"
            if key["kid"] in kids:
                raise ClientRegistrationError(f"the JWKS has two keys with kid {key['kid']!r}")
            kids.add(key["kid"])
        private = [member for member in PRIVATE_JWK_MEMBERS if member in key]
        if key.get("kty") == "oct":
            raise ClientRegistrationError(
                f"{name} is a symmetric key; private_key_jwt needs public keys only"
            )
        if private:
            raise ClientRegistrationError(
                f"{name} contains private key material ({', '.join(private)}); "
                "register the public keys only"
            )
        if key.get("kty") not in ASYMMETRIC_KEY_TYPES:
            raise ClientRegistrationError(
                f"{name} has an unsupported kty {key.get('kty')!r} "
                f"(expected {', '.join(ASYMMETRIC_KEY_TYPES)})"
            )
        if key.get("use", "sig") != "sig":
            raise ClientRegistrationError(f"{name} is not a signing key (use={key['use']!r})")
        if key["kty"] == "RSA" and _rsa_bits(key) < MIN_RSA_BITS:
            raise ClientRegistrationError(
                f"{name} is an RSA key of fewer than {MIN_RSA_BITS} bits"
            )
    if len(keys) > 1 and len(kids) != len(keys):
        raise ClientRegistrationError("with several keys, each key needs its own kid")
    try:
        key_set = KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ClientRegistrationError(f"the JWKS cannot be read: {detail}") from None
    if any(key.is_private for key in key_set.keys):
        raise ClientRegistrationError("the JWKS contains a private key; register public keys only")
    return {"keys": [dict(key) for key in keys]}


def register_client(
    db: Session,
    tenant: Tenant,
    *,
    name: str,
    redirect_uris: Iterable[str],
    post_logout_redirect_uris: Iterable[str] = (),
    scopes: Iterable[str] = DEFAULT_SCOPES,
    auth_method: str = DEFAULT_AUTH_METHOD,
    jwks: dict[str, Any] | None = None,
    first_party: bool = False,
    client_id: str | None = None,
    require_pkce: bool = True,
    refresh_token_ttl: int | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
    require_pushed_authorization_requests: bool = False,
) -> tuple[Client, str | None]:
    """Register a client of ``tenant``; return it with its secret (None for keys or public).

    The secret is shown once: only its digest is stored. Raises
    ``ClientRegistrationError`` and adds nothing when a value is not acceptable.
    The caller commits (the audit event is part of the same transaction).
    """
    name = name.strip()
    if not name:
        raise ClientRegistrationError("the client needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ClientRegistrationError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    if has_invisible(name):
        raise ClientRegistrationError("the name contains a control or invisible character")
    redirects = _unique(check_redirect_uri(uri) for uri in redirect_uris)
    if not redirects:
        raise ClientRegistrationError("the client needs at least one redirect URI")
    post_logout = _unique(
        check_redirect_uri(uri, label="post-logout redirect URI")
        for uri in post_logout_redirect_uris
    )
    allowed_scopes = check_scopes(scopes)
    if auth_method not in AUTH_METHODS:
        raise ClientRegistrationError(
            f"unknown auth method {auth_method!r} (expected {', '.join(AUTH_METHODS)})"
        )
    if auth_method == "private_key_jwt":
        if jwks is None:
            raise ClientRegistrationError("private_key_jwt needs the client's public keys (JWKS)")
        jwks = check_jwks(jwks)
    elif jwks is not None:
        raise ClientRegistrationError("a JWKS is only used with the private_key_jwt auth method")
    check_pkce_setting(auth_method, require_pkce)
    check_refresh_token_ttl(refresh_token_ttl)
    backchannel = check_backchannel_logout_uri(backchannel_logout_uri)
    if client_id is None:
        client_id = generate_client_id(tenant)
    elif not CLIENT_ID_RE.match(client_id):
        raise ClientRegistrationError(
            f"client id {client_id!r} must be 3–64 characters: letters, digits, '.', '_', '~', '-'"
        )
    if db.scalar(select(Client.id).where(Client.client_id == client_id)) is not None:
        raise ClientRegistrationError(f"a client with id {client_id!r} already exists")

    secret = secrets.token_urlsafe(32) if auth_method in SECRET_AUTH_METHODS else None
    client = Client(
        tenant=tenant.slug,
        client_id=client_id,
        name=name,
        secret_digest=token_digest(secret) if secret else None,
        auth_method=auth_method,
        redirect_uris=redirects,
        post_logout_redirect_uris=post_logout,
        scopes=allowed_scopes,
        jwks=jwks,
        first_party=first_party,
        require_pkce=require_pkce,
        refresh_token_ttl=refresh_token_ttl,
        backchannel_logout_uri=backchannel,
        backchannel_logout_session_required=backchannel_logout_session_required,
        require_pushed_authorization_requests=require_pushed_authorization_requests,
    )
    db.add(client)
    db.flush()
    events.record_event(
        db, events.CLIENT_ADDED, tenant=tenant.slug, client_id=client_id,
        name=name, auth_method=auth_method, first_party=first_party,
        redirect_uris=redirects, scopes=allowed_scopes, require_pkce=require_pkce,
        refresh_token_ttl=refresh_token_ttl, backchannel_logout_uri=backchannel,
        backchannel_logout_session_required=backchannel_logout_session_required,
        require_pushed_authorization_requests=require_pushed_authorization_requests,
    )
    return client, secret


def check_pkce_setting(auth_method: str, require_pkce: bool) -> None:
    """Only a confidential client may be exempt from PKCE (RFC 9700 2.1.1)."""
    if auth_method == "none" and not require_pkce:
        raise ClientRegistrationError("a public client (auth method none) must use PKCE")


def check_backchannel_logout_uri(uri: str | None) -> str | None:
    """Back-Channel Logout 1.0 2.2: an absolute URI without fragment, https (plain http only on
    loopback, for development), where the provider posts logout tokens; None: none."""
    if uri is None:
        return None
    return check_redirect_uri(uri, label="back-channel logout URI")


def check_refresh_token_ttl(seconds: int | None) -> None:
    low, high = REFRESH_TTL_BOUNDS
    if seconds is not None and not low <= seconds <= high:
        raise ClientRegistrationError(
            f"the refresh token lifetime must be between {low} and {high} seconds"
        )


def update_client(
    db: Session,
    client_id: str,
    *,
    require_pkce: bool | None = None,
    refresh_token_ttl: int | None = None,
    default_refresh_token_ttl: bool = False,
    backchannel_logout_uri: str | None = None,
    no_backchannel_logout: bool = False,
    backchannel_logout_session_required: bool | None = None,
    require_pushed_authorization_requests: bool | None = None,
) -> Client:
    """Change the PKCE requirement, the refresh token lifetime, the back-channel logout or the
    requirement of pushed authorization requests of a client; None keeps a value,
    ``default_refresh_token_ttl`` goes back to the provider's setting,
    ``no_backchannel_logout`` removes the URI. The caller commits."""
    client = find_client(db, client_id)
    if client is None:
        raise ClientRegistrationError(f"no client with id {client_id!r}")
    if require_pkce is not None:
        check_pkce_setting(client.auth_method, require_pkce)
        client.require_pkce = require_pkce
    if default_refresh_token_ttl:
        client.refresh_token_ttl = None
    elif refresh_token_ttl is not None:
        check_refresh_token_ttl(refresh_token_ttl)
        client.refresh_token_ttl = refresh_token_ttl
    if no_backchannel_logout:
        client.backchannel_logout_uri = None
    elif backchannel_logout_uri is not None:
        client.backchannel_logout_uri = check_backchannel_logout_uri(backchannel_logout_uri)
    if backchannel_logout_session_required is not None:
        client.backchannel_logout_session_required = backchannel_logout_session_required
    if require_pushed_authorization_requests is not None:
        client.require_pushed_authorization_requests = require_pushed_authorization_requests
    db.flush()
    events.record_event(
        db, events.CLIENT_UPDATED, tenant=client.tenant, client_id=client.client_id,
        require_pkce=client.require_pkce, refresh_token_ttl=client.refresh_token_ttl,
        backchannel_logout_uri=client.backchannel_logout_uri,
        backchannel_logout_session_required=client.backchannel_logout_session_required,
        require_pushed_authorization_requests=client.require_pushed_authorization_requests,
    )
    return client


# A client's row, by one statement on its own (prepared, on PostgreSQL: ``Statements``).
_CLIENT_ROW = select(*Client.__table__.columns).where(
    Client.client_id == bindparam("client_id"), Client.tenant == bindparam("tenant"))


def current_client(statements: Statements, tenant: str, client_id: str) -> Client | None:
    """The client as the database holds it now, made from its row without the ORM's query
    (a third of the cost): an object of no session, read-only."""
    row = statements.first(_CLIENT_ROW, {"client_id": client_id, "tenant": tenant})
    return from_row(Client, row._asdict()) if row is not None else None


class ClientCache:
    """Clients as read from the database at most ``ttl`` seconds ago, per process.

    The machine endpoints authenticate a client on every call; its record changes
    only through ``idp clients``. Entries are ``current_client``'s objects, read-only;
    unknown ids are not remembered (a client just added works at once). At most
    ``max_entries`` are kept, the oldest dropped first.
    """

    def __init__(self, ttl: float, *, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[Client, float]] = {}

    def get(self, statements: Callable[[], Statements], tenant: str, client_id: str) -> Client | None:
        """The client, from memory while its entry is fresh; else read on ``statements()``
        (asked for only then)."""
        key = (tenant, client_id)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return entry[0]
        client = current_client(statements(), tenant, client_id)
        if client is None or self.ttl <= 0:
            self._entries.pop(key, None)
            return client
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[key] = (client, now + self.ttl)
        return client


def find_client(db: Session, client_id: str) -> Client | None:
    return db.scalar(select(Client).where(Client.client_id == client_id))


def list_clients(db: Session, tenant: Tenant) -> list[Client]:
    query = select(Client).where(Client.tenant == tenant.slug)
    return list(db.scalars(query.order_by(Client.created_at, Client.id)))


def remove_client(db: Session, client_id: str) -> Client:
    """Delete a client; its codes, tokens and consents go with it. The caller commits."""
    client = find_client(db, client_id)
    if client is None:
        raise ClientRegistrationError(f"no client with id {client_id!r}")
    db.delete(client)
    db.flush()
    events.record_event(
        db, events.CLIENT_REMOVED, tenant=client.tenant, client_id=client.client_id,
        name=client.name,
    )
    return client


def _rsa_bits(key: dict[str, Any]) -> int:
    # Checked before joserfc reads the key, which only warns about short ones.
    modulus = key.get("n")
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))

"""The OpenID Provider, assembled from Authlib's grants, extensions and endpoints.

One server object serves every tenant: clients, tokens and the issuer are
looked up for the tenant of the current request, so a client or token of one
tenant is unknown to the other.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

# Authlib ships no type information (no py.typed marker).
from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import TokenEndpoint, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    MissingAuthorizationError,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants.util import create_half_hash
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app, request
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from idp import events
from idp.accounts.levels import Authentication
from idp.accounts.models import Account
from idp.db import rowcount, utcnow
from idp.extensions import current_tenant, db, find_service, services
from idp.oidc.claims import RELEASABLE, SCOPE_CLAIMS, parse_claims_parameter, user_claims
from idp.oidc.clients import ClientCache
from idp.oidc.models import SUPPORTED_SCOPES, AuthorizationCode, Client, Token, token_digest
from idp.oidc.revocation import revoke_tokens
from idp.oidc.sessions import ProviderSessions
from idp.web.gate import VSCHAR

log = logging.getLogger(__name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# Refresh and introspection only ask whether the token's account is still active.
ACCOUNT_STATUS = joinedload(Token.account).load_only(Account.status)
# One statement object for every lookup, so that its cache key is computed once.
CLIENT_NOW = select(Client).where(Client.client_id == bindparam("client_id"),
                                  Client.tenant == bindparam("tenant"))


class StoredRequest(OAuth2Request):
    """An authorization request replayed from an interaction, not from the live HTTP request."""

    def __init__(self, uri: str, params: list[list[str]]):
        super().__init__(method="GET", uri=uri, headers={})
        self.payload = _Payload(params)
        # The member's sign-in the code will carry (auth_time, acr, amr, sid), set by the
        # authorization endpoint once it decided to issue the code.
        self.authentication: Authentication | None = None

    @property
    def args(self):
        return self.payload.data

    @property
    def form(self):
        return {}


class _Payload:
    def __init__(self, params: list[list[str]]):
        self.datalist: dict[str, list[str]] = {}
        for key, value in params:
            self.datalist.setdefault(key, []).append(value)
        self.data = {key: values[0] for key, values in self.datalist.items()}

    def __getattr__(self, name: str):
        if name in ("client_id", "redirect_uri", "scope", "state", "grant_type"):
            return self.data.get(name)
        if name == "response_type":
            value = self.data.get("response_type")
            return " ".join(sorted(value.split())) if value and " " in value else value
        raise AttributeError(name)


class Provider(AuthorizationServer):
    def __init__(self, client_cache: ClientCache):
        super().__init__()
        self.client_cache = client_cache

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        if request.blueprint == "oidc_api":
            # Token, push, introspection, revocation: see Settings.client_cache_seconds.
            return self.client_cache.get(db(), current_tenant().slug, client_id)
        # The browser-facing endpoints read the record as it is now (redirect URIs, consent).
        return db().scalar(CLIENT_NOW, {"client_id": client_id, "tenant": current_tenant().slug})

    def validate_requested_scope(self, scope) -> None:
        # OIDC Core 3.1.2.1: scope values that are not understood SHOULD be ignored. The client's
        # get_allowed_scope then keeps the scopes it is registered for, all of them supported.
        return None

    def create_oauth2_request(self, request):
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)

    def create_token_response(self, request=None):
        request = self.create_oauth2_request(request)
        # RFC 6749 5.2: a missing grant_type or a repeated parameter (3.2) is
        # invalid_request; Authlib answers the first with unsupported_grant_type
        # and silently takes the first value of the second.
        if not request.payload.grant_type:
            error = InvalidRequestError("Missing 'grant_type'.")
            return self.handle_error_response(request, error)
        if any(len(values) > 1 for values in request.payload.datalist.values()):
            error = InvalidRequestError("Parameters must not be repeated.")
            return self.handle_error_response(request, error)
        try:
            return super().create_token_response(request)
        except ValueError as exc:
            return self.handle_error_response(request, _unsayable(exc))

    def create_endpoint_response(self, name, request=None):
        try:
            return super().create_endpoint_response(name, request)
        except ValueError as exc:
            return self.handle_error_response(self.create_oauth2_request(request), _unsayable(exc))

    def validate_endpoint_request(self, name, request=None):
        try:
            return super().validate_endpoint_request(name, request)
        except ValueError as exc:
            raise _unsayable(exc) from None

    def authenticate_client(self, request, methods, endpoint="token"):
        # RFC 6749 2.3 and 5.2: more than one authentication mechanism is invalid_request
        # (Authlib would take the first that succeeds).
        form = request.form
        used = [
            bool(request.headers.get("Authorization")),
            "client_secret" in form,
            "client_assertion" in form or "client_assertion_type" in form,
        ]
        if sum(used) > 1:
            raise InvalidRequestError("Use one client authentication method only.")
        _check_basic_credentials(request.headers.get("Authorization"))
        return super().authenticate_client(request, methods, endpoint)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        code: AuthorizationCode | None = request.authorization_code
        previous: Token | None = request.refresh_token
        origin = code or previous
        if origin is None:
            # Tokens come from the code and refresh grants only: one of the two is set.
            raise RuntimeError("A token needs the code or refresh token it was issued for.")
        refresh = token.get("refresh_token")
        refresh_expires_at = _refresh_expiry(request.client, origin, previous) if refresh else None
        row = Token(
            tenant=current_tenant().slug,
            client_id=request.client.client_id,
            account_id=request.user.id,
            access_token_digest=token_digest(token["access_token"]),
            refresh_token_digest=token_digest(refresh) if refresh else None,
            refresh_expires_at=refresh_expires_at,
            scope=token["scope"],
            refresh_scope=(previous.granted_scope
                           if refresh and previous and previous.granted_scope != token["scope"] else None),
            expires_in=token["expires_in"],
            family_id=previous.family_id if previous else secrets.token_hex(16),
            code_id=code.id if code else (previous.code_id if previous else None),
            claims=origin.claims,
            auth_time=origin.auth_time,
            acr=origin.acr,
            amr=origin.amr,
            sid=origin.sid,
        )
        db().add(row)
        db().flush()

    def issuer(self) -> str:
        return current_tenant().issuer


def _unsayable(exc: ValueError) -> InvalidRequestError:
    """The answer to a request Authlib could not even describe: it refuses to build an error
    whose description would echo characters RFC 6749 5.2 forbids in error_description (the
    request's own values, a JOSE header's ``kid``)."""
    log.warning("request refused: %s", type(exc).__name__)
    return InvalidRequestError("The request is not valid.")


def _check_basic_credentials(header: str | None) -> None:
    """Basic credentials that decode (RFC 7617 2: base64 of UTF-8), each part form-urlencoded
    (RFC 6749 2.3.1) and made of VSCHAR (appendix A.1, A.2); otherwise invalid_client, with
    the challenge of the scheme used (RFC 6749 5.2)."""
    if not header:
        return
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
        parts = [unquote(client_id, errors="strict"), unquote(secret, errors="strict")]
    except ValueError:  # binascii.Error and UnicodeDecodeError among them
        parts = []
    if not parts or not all(VSCHAR.fullmatch(part) for part in parts):
        raise InvalidClientError(description="Malformed Basic credentials.", status_code=401)


def _refresh_expiry(client: Client, origin: AuthorizationCode | Token, previous: Token | None) -> datetime:
    """When the refresh token family ends: an absolute lifetime from the sign-in.

    A rotation carries the family's end over (RFC 9700 4.14.2: a refresh token lifetime that each
    use renewed would let a stolen or forgotten grant live for ever).
    """
    if previous is not None and previous.refresh_expires_at is not None:
        return previous.refresh_expires_at
    ttl = client.refresh_token_ttl or services().settings.refresh_token_ttl
    signed_in = datetime.fromtimestamp(origin.auth_time, UTC).replace(tzinfo=None)
    return signed_in + timedelta(seconds=ttl)


def generate_bearer_token(grant_type, client, user=None, scope=None, expires_in=None,  # noqa: ARG001 - Authlib's generator signature
                          include_refresh_token=True):
    settings = services().settings
    token = {
        "token_type": "Bearer",
        "access_token": secrets.token_urlsafe(32),
        "expires_in": expires_in or settings.access_token_ttl,
        "scope": scope,
    }
    # Refresh tokens only with offline_access (OIDC Core 11). At a refresh the grant keeps its
    # scope whatever the access token asks (RFC 6749 6): the rotated refresh token always follows.
    granted = grant_type == "refresh_token" or "offline_access" in (scope or "").split()
    if include_refresh_token and granted:
        token["refresh_token"] = secrets.token_urlsafe(32)
    return token


class S256Only(CodeChallenge):
    """PKCE with S256 only, required of every client unless a confidential one was exempted
    (RFC 9700 2.1.1: authorization servers MUST support it and SHOULD require it)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.pkce_required and not challenge:
            raise InvalidRequestError("PKCE is required (code_challenge with S256).")
        if challenge and method != "S256":
            # RFC 7636 4.3: a missing method means "plain", which is refused.
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        # A code issued without a challenge before the client was held to PKCE is not redeemed.
        code: AuthorizationCode = grant.request.authorization_code
        if grant.request.client.pkce_required and not code.code_challenge:
            raise InvalidGrantError("The authorization request had no 'code_challenge'.")
        super().validate_code_verifier(grant, result)


def _claims_within(claims: dict[str, Any] | None, client: Client) -> dict[str, Any] | None:
    """The `claims` request limited to what the client's allowed scopes release.

    OIDC Core 5.5 lets a client name claims individually; without this, a client
    registered for "openid profile" could obtain phone or member claims by name.
    """
    if not claims:
        return claims
    allowed = {name for scope in client.scopes for name in SCOPE_CLAIMS.get(scope, ())}
    refused = RELEASABLE - allowed
    return {
        target: {name: spec for name, spec in members.items() if name not in refused}
        for target, members in claims.items()
    }


def _about(row: AuthorizationCode | Token) -> dict[str, str]:
    return {"tenant": row.tenant, "account_id": row.account_id, "client_id": row.client_id}


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        authentication = request.authentication if isinstance(request, StoredRequest) else None
        if authentication is None:
            # Codes are issued by authorization.authorize only, for a signed-in member.
            raise RuntimeError("An authorization code needs the member's authentication.")
        data = request.payload.data
        db().add(
            AuthorizationCode(
                code_digest=token_digest(code),
                tenant=current_tenant().slug,
                client_id=request.client.client_id,
                account_id=request.user.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                claims=_claims_within(parse_claims_parameter(data.get("claims")), request.client),
                auth_time=authentication.auth_time,
                acr=authentication.acr,
                amr=authentication.amr,
                sid=authentication.sid,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=utcnow() + timedelta(seconds=services().settings.authorization_code_ttl),
            )
        )
        # Back-Channel Logout 1.0 2.7: the client is told when this session ends.
        find_service(ProviderSessions).signed_in_to(authentication.sid, request.client.client_id)

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(32)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        session = db()
        row = session.scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code_digest == token_digest(code),
                AuthorizationCode.client_id == client.client_id,
            )
        )
        if row is None or row.is_expired():
            return None
        if row.consumed_at is None:
            # Claimed only once every check passed (delete_authorization_code), so a failed
            # attempt (wrong verifier, wrong redirect_uri) leaves the code to its owner.
            return row
        # RFC 6749 4.1.2: a code used twice revokes what it produced.
        revoke_tokens(session, Token.code_id == row.id, events.CODE_REUSED, **_about(row))
        session.commit()
        return None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Mark the code consumed, atomically: of two concurrent redemptions only one wins.

        Runs after the tokens were added to the transaction; the loser's error
        response means its transaction is rolled back (the token view commits on success only).
        """
        claimed = rowcount(db().execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == authorization_code.id,
                   AuthorizationCode.consumed_at.is_(None))
            .values(consumed_at=utcnow())
        ))
        if not claimed:
            raise InvalidGrantError("Invalid 'code' in request.")

    def authenticate_user(self, authorization_code: AuthorizationCode):
        account = authorization_code.account
        return account if account.is_active else None


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        session = db()
        row = session.scalar(
            select(Token).options(ACCOUNT_STATUS).where(
                Token.refresh_token_digest == token_digest(refresh_token),
                Token.tenant == current_tenant().slug,
            )
        )
        if row is None:
            return None
        row.matched_as = "refresh_token"
        if row.rotated_at is not None and row.revoked_at is None:
            # A rotated refresh token presented again: stolen or replayed.
            # Revoke the whole family (OAuth 2.0 Security BCP 4.14.2).
            revoke_tokens(session, Token.family_id == row.family_id, events.REFRESH_REUSED,
                          **_about(row))
            session.commit()
            return None
        return row if row.is_refresh_usable() else None

    def authenticate_user(self, refresh_token: Token):
        account = refresh_token.account
        if not account.is_active:
            # RFC 6749 5.2: the grant is no longer valid; Authlib would say invalid_request.
            raise InvalidGrantError("The account is not active.")
        return account

    def revoke_old_credential(self, refresh_token: Token) -> None:
        claimed = rowcount(db().execute(
            update(Token)
            .where(Token.id == refresh_token.id, Token.rotated_at.is_(None))
            .values(rotated_at=utcnow())
        ))
        if not claimed:
            # Lost a race with a concurrent use of the same refresh token.
            raise InvalidGrantError()


class OpenIDConnect(OpenIDCode):
    """ID tokens signed by the single active key, with the tenant as issuer."""

    def exists_nonce(self, nonce: str, request) -> bool:
        # Nonce replay is the relying party's check (OIDC Core 3.1.3.7 step 11).
        return False

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        # Authlib's version asks the key store three times (alg, header, key): a key
        # activated in between would sign under another key's kid. One snapshot per
        # token keeps the header's kid and alg, at_hash and the signature together.
        signer = services().keystore.signer()
        claims = self.get_compatible_claims(request)
        if request.authorization_code:
            claims.update(self.get_authorization_code_claims(request.authorization_code))
        access_token = token.get("access_token")
        if access_token:
            # OIDC Core 3.1.3.6: the hash function of the ID token's own alg.
            at_hash = create_half_hash(access_token, signer.alg)
            if at_hash is not None:
                claims["at_hash"] = at_hash.decode()
        claims.update(self.generate_user_info(request.user, token["scope"]))
        header = {"alg": signer.alg, "kid": signer.kid, "typ": "JWT"}
        return jwt.encode(header, claims, signer.key, [signer.alg])

    def get_client_claims(self, client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": current_tenant().issuer,
            "aud": [client.get_client_id()],
            "azp": client.get_client_id(),
            "iat": now,
            "exp": now + services().settings.id_token_ttl,
        }

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if authorization_code.sid:
            claims["sid"] = authorization_code.sid
        # OIDC Core 5.5: the claims requested by name for the ID token were kept with the code,
        # which this hook sees and generate_user_info does not.
        claims.update(user_claims(authorization_code.account, "", authorization_code.claims, "id_token"))
        return claims

    def generate_user_info(self, user: Account, scope: str) -> UserInfo:
        # OIDC Core 5.4: with the code flow an access token is always issued, so the claims the
        # scopes release are served by the UserInfo endpoint, not put in the ID token; it carries
        # those asked by name in claims.id_token (get_authorization_code_claims).
        return UserInfo(sub=user.id)


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt client authentication (OIDC Core 9, RFC 7523 3)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        issuer = current_tenant().issuer
        # RFC 9126 2: the pushed authorization request endpoint accepts the same audiences.
        return [issuer, f"{issuer}/token", f"{issuer}/par"]

    def resolve_client_public_key(self, client: Client):
        if not client.jwks:
            # RFC 6749 5.2: the client cannot authenticate this way.
            raise InvalidClientError(description="The client has no registered keys.")
        return KeySet.import_key_set({"keys": client.jwks["keys"]})

    def validate_jti(self, claims, jti) -> bool:
        # Each assertion is single use: remember its jti until it expires.
        ttl = max(60, int(claims.get("exp", 0) - time.time()) + 60)
        return services().store.set(f"jti:{claims['sub']}:{jti}", "1", ttl, only_if_absent=True)


class UnsupportedTokenType(OAuth2Error):
    """RFC 7009 2.2.1, presented as RFC 6749 5.2 says: 400 (Authlib's is a bare 401)."""

    error = "unsupported_token_type"


class _TokenLookup(TokenEndpoint):
    # What the endpoint needs of the token's account, loaded in the same query.
    account_loading: tuple = ()

    def check_params(self, request, client) -> None:
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError:
            raise UnsupportedTokenType() from None

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        if not isinstance(token_string, str) or len(token_string) > 200:
            return None
        digest = token_digest(token_string)
        tenant = current_tenant().slug
        kinds = ("access_token", "refresh_token")
        order = reversed(kinds) if token_type_hint == kinds[1] else kinds
        for kind in order:
            column = Token.access_token_digest if kind == "access_token" else Token.refresh_token_digest
            row = db().scalar(
                select(Token).options(*self.account_loading).where(column == digest, Token.tenant == tenant))
            if row is not None:
                row.matched_as = kind
                return row
        return None


class Revocation(_TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def revoke_token(self, token: Token, request) -> None:
        # Revoking a refresh token ends its family; an access token ends its own row, which also
        # holds the refresh token issued with it (RFC 7009 2.1 allows revoking both).
        if token.matched_as == "refresh_token":
            condition = Token.family_id == token.family_id
        else:
            condition = Token.id == token.id
        revoke_tokens(db(), condition, events.TOKEN_REVOKED, kind=token.matched_as, **_about(token))


def _epoch(value: datetime) -> int:
    # Stored timestamps are naive UTC; a naive .timestamp() would read them as local time.
    return int(value.replace(tzinfo=UTC).timestamp())


class Introspection(_TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    account_loading = (ACCOUNT_STATUS,)

    def check_permission(self, token: Token, client: Client, request) -> bool:
        # A client may introspect the tokens issued to it.
        return token.client_id == client.client_id

    def create_introspection_payload(self, token: Token | None):
        # As at the userinfo endpoint, a disabled account's tokens are not active.
        if token is None or not token.account.is_active:
            return {"active": False}
        if token.matched_as == "refresh_token":
            # Judged on its own lifetime: Authlib's check is the access token's,
            # which expires long before the refresh token stored on the same row.
            return self.introspect_token(token) if token.is_refresh_usable() else {"active": False}
        return super().create_introspection_payload(token)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        expires = (
            token.refresh_expires_at if token.matched_as == "refresh_token" else token.expires_at
        )
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer" if token.matched_as == "access_token" else "refresh_token",
            "scope": token.get_scope(),
            "sub": token.account_id,
            "aud": token.client_id,
            "iss": current_tenant().issuer,
            "iat": _epoch(token.issued_at),
            "exp": _epoch(expires) if expires else None,
            "auth_time": token.auth_time,
            "acr": token.acr,
        }


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        if not isinstance(token_string, str) or len(token_string) > 200:
            return None
        return db().scalar(
            select(Token).options(joinedload(Token.account)).where(
                Token.access_token_digest == token_digest(token_string),
                Token.tenant == current_tenant().slug,
            )
        )

    def validate_token(self, token, scopes, request):
        super().validate_token(token, scopes, request)
        if not token.account.is_active:
            raise InvalidTokenError(realm=self.realm)


class BearerChallenge(OAuth2Error):
    """A UserInfo failure with the challenge RFC 6750 3 asks for.

    Authlib answers a missing token or another scheme with its own
    "missing_authorization"/"unsupported_token_type" codes, and insufficient
    scope without any WWW-Authenticate header.
    """

    def __init__(self, error: str | None = None, description: str | None = None,
                 status_code: int = 401, scope: str | None = None):
        super().__init__(description=description, status_code=status_code)
        self.error = error
        self.scope = scope

    def get_body(self):
        return super().get_body() if self.error else []

    def get_headers(self):
        # RFC 6750 3.1: no error code when the request carried no bearer token at all.
        params = []
        if self.error:
            params.append(f'error="{self.error}"')
        if self.scope:
            params.append(f'scope="{self.scope}"')
        challenge = "Bearer " + ", ".join(params) if params else "Bearer"
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class UserInfoProtector(ResourceProtector):
    """The access token from the Authorization header (RFC 6750 2.1) or from a form-encoded
    POST body (2.2); never from the query (2.3: it ends up in logs, RFC 9700 4.3.2)."""

    def parse_request_authorization(self, request):
        body_token = _form_body_token()
        if body_token is None:
            return super().parse_request_authorization(request)
        if request.headers.get("Authorization"):
            # RFC 6750 2: clients MUST NOT use more than one method in a request.
            raise BearerChallenge("invalid_request", "Send the access token in one place only.", 400)
        return self.get_token_validator("Bearer"), body_token


def _form_body_token() -> str | None:
    """The access_token of a form-encoded, non-GET request body (RFC 6750 2.2), if any."""
    if request.method == "GET" or request.mimetype != "application/x-www-form-urlencoded":
        return None
    return request.form.get("access_token") or None


class UserInfoResponder(UserInfoEndpoint):
    def __call__(self, request: OAuth2Request) -> tuple[int, UserInfo, list[tuple[str, str]]]:
        try:
            token: Token = self.resource_protector.acquire_token("openid")
        except (MissingAuthorizationError, UnsupportedTokenTypeError):
            raise BearerChallenge() from None
        except InsufficientScopeError:
            raise BearerChallenge("insufficient_scope", "The access token lacks the openid scope.",
                                  403, scope="openid") from None
        # OIDC Core 5.3.2: plain JSON, as no client registers userinfo_signed_response_alg
        # (Authlib's own __call__ would load the token's client only to look for it).
        return 200, self.token_user_info(token), default_json_headers

    def token_user_info(self, token: Token) -> UserInfo:
        """The claims the token's scope releases and those its request named (OIDC Core 5.3.2, 5.5).

        Authlib's generate_user_info(user, scope) does not see the token, which holds the latter.
        """
        return UserInfo(user_claims(token.account, token.scope, token.claims, "userinfo"))


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return services().keystore.verification_keyset()

    def validate_request(self, request):
        logout_request = super().validate_request(request)
        claims = logout_request.id_token_claims
        # RP-Initiated Logout 1.0 2: the OP MUST validate that it issued the hint. The keys may be
        # shared between tenants, so the signature alone does not tell which issuer it was.
        if claims is not None and claims.get("iss") != current_tenant().issuer:
            raise InvalidRequestError("The 'id_token_hint' was not issued by this provider.")
        return logout_request

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Client | None:
        """The client the hint was issued to (RP-Initiated Logout 1.0 2-3): its ``azp``, or the
        one audience; ``aud`` is an array in the ID tokens of this provider (OIDC Core 2)."""
        aud = id_token_claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        azp = id_token_claims.get("azp")
        if isinstance(azp, str) and azp in audiences:
            client_id = azp
        elif len(audiences) == 1 and isinstance(audiences[0], str):
            client_id = audiences[0]
        else:
            return None
        return self.server.query_client(client_id)

    def end_session(self, end_session_request) -> None:
        # The view signs the member out once they confirmed; nothing to do here.
        return None


resource_protector = UserInfoProtector()
resource_protector.register_token_validator(AccessTokenValidator())


def build_server(app) -> Provider:
    server = Provider(ClientCache(app.extensions["idp"].settings.client_cache_seconds))
    server.init_app(app)
    server.register_token_generator("default", generate_bearer_token)
    server.scopes_supported = list(SUPPORTED_SCOPES)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_grant(AuthorizationCodeGrant, [OpenIDConnect(require_nonce=False), S256Only()])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_endpoint(UserInfoResponder(resource_protector=resource_protector))
    server.register_endpoint(EndSession)
    return server


def current_server() -> Provider:
    return current_app.extensions["idp_oidc"]

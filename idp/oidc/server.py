"""The OpenID Provider, assembled from Authlib's grants, extensions and endpoints.

One server object serves every tenant: clients, tokens and the issuer are
looked up for the tenant of the current request, so a client or token of one
tenant is unknown to the other.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

# Authlib ships no type information (no py.typed marker).
from authlib.common.security import is_secure_transport
from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import TokenEndpoint, grants
from authlib.oauth2.rfc6749.errors import (
    InsecureTransportError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    MissingAuthorizationError,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants.util import create_half_hash
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app, has_request_context, request
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Row, insert
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_host

from idp import events
from idp.accounts.levels import Authentication
from idp.db import Database, Statements, utcnow, write
from idp.extensions import current_tenant, db, find_service, services, single_statements
from idp.oidc import ledger
from idp.oidc.claims import RELEASABLE, SCOPE_CLAIMS, parse_claims_parameter, user_claims
from idp.oidc.clients import ClientCache, current_client
from idp.oidc.models import SUPPORTED_SCOPES, Client, Token, token_digest
from idp.oidc.sessions import ProviderSessions
from idp.web.gate import VSCHAR
from idp.web.lane import Answer, Parameters
from idp.web.transactions import check_in_time, commit_deadline

log = logging.getLogger(__name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class _ServedRequest(OAuth2Request):
    """An OAuth2Request made from a request the provider is serving (its WSGI environ).

    Authlib's request checks its transport (https, or plain HTTP to a loopback host) as it is
    made; that check's outcome depends on the scheme and the host only, so it is made once for
    each (``_check_transport``): made anew, its URL and address parsing took 7 % of an
    introspection (bench.cpu). The rest is what ``OAuth2Request.__init__`` sets; the URL is the
    request's without its query."""

    def __init__(self, environ: dict[str, Any], method: str, headers: Any):
        scheme, host = environ["wsgi.url_scheme"], get_host(environ)
        _check_transport(scheme, host)
        self.method = method
        self.uri = f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ['PATH_INFO']}"
        self.headers = headers
        self._body = None
        self.payload: Any = None
        self.client: Any = None
        self.user: Any = None
        self.auth_method = self.authorization_code = self.refresh_token = self.credential = None
        self._scope = None


class StoredRequest(_ServedRequest):
    """An authorization request replayed from an interaction, not from the live HTTP request
    (whose environ is given)."""

    def __init__(self, environ: dict[str, Any], params: list[list[str]]):
        super().__init__(environ, "GET", {})
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


class LaneRequest(_ServedRequest):
    """A protocol API request as the lane read it (idp.web.lane): its form's parameters, which
    the gate let through (each once), and its header fields."""

    def __init__(self, environ: dict[str, Any], parameters: Parameters):
        super().__init__(environ, environ["REQUEST_METHOD"], EnvironHeaders(environ))
        self._form = dict(parameters)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def args(self):
        return {}

    @property
    def form(self):
        return self._form


@functools.lru_cache(maxsize=64)
def _transport_allowed(scheme: str, host: str) -> bool:
    return is_secure_transport(f"{scheme}://{host}/")


def _check_transport(scheme: str, host: str) -> None:
    """Authlib's transport check (``InsecureTransportError.check``) of a request to ``host``
    over ``scheme``: the last hosts' outcomes are kept."""
    if not _transport_allowed(scheme, host):
        raise InsecureTransportError()


class _Payload:
    def __init__(self, params: list[list[str]]):
        self.datalist: dict[str, list[str]] = {}
        for key, value in params:
            self.datalist.setdefault(key, []).append(value)
        self.data = {key: values[0] for key, values in self.datalist.items()}

    def single(self, name: str) -> str | None:
        """The parameter's value if the request has it once; None if it is absent or repeated."""
        values = self.datalist.get(name, [])
        return values[0] if len(values) == 1 else None

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
        if not has_request_context() or request.blueprint == "oidc_api":
            # Token, push, introspection, revocation (the lane's requests have no request
            # context, idp.web.lane): see Settings.client_cache_seconds.
            return self.client_cache.get(single_statements, current_tenant().slug, client_id)
        # The browser-facing endpoints read the record as it is now (redirect URIs, consent).
        return current_client(single_statements(), current_tenant().slug, client_id)

    def validate_requested_scope(self, scope) -> None:
        # OIDC Core 3.1.2.1: scope values that are not understood SHOULD be ignored. The client's
        # get_allowed_scope then keeps the scopes it is registered for, all of them supported.
        return None

    def create_oauth2_request(self, request):
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)

    def handle_response(self, status_code, payload, headers):
        if has_request_context():
            return super().handle_response(status_code, payload, headers)
        # A request the lane answers (idp.web.lane): the answer as it is sent, written as
        # Authlib's Flask integration writes it (the application's JSON), without a response.
        body = current_app.json.dumps(payload) if isinstance(payload, dict) else payload
        return status_code, headers, body.encode() if isinstance(body, str) else body

    def handle_error_response(self, request, error):
        # Every error of the token, revocation, introspection and PAR endpoints: the body and
        # the Basic challenge both say its description.
        if isinstance(error, InvalidClientError) and error.description:
            error.description = _methods_in_words(error.description)
        return super().handle_error_response(request, error)

    def create_token_response(self, request=None):
        request = self.create_oauth2_request(request)
        # RFC 6749 5.2: a missing grant_type or a repeated parameter (3.2) is
        # invalid_request; Authlib answers the first with unsupported_grant_type
        # and silently takes the first value of the second.
        if not request.payload.grant_type:
            error = InvalidRequestError("Missing 'grant_type'.")
            return self.handle_error_response(request, error)
        if _has_repeats(request):
            return self.handle_error_response(request, InvalidRequestError(_REPEATED))
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

    def issuer(self) -> str:
        return current_tenant().issuer


# Authlib's invalid_client when no method authenticated the client (RFC 6749 5.2) names the
# methods accepted as a Python list: "... with methods: ['client_secret_basic', 'none']".
_NO_METHOD = re.compile(r"The client cannot authenticate with methods: \[([^\]]*)\]")


def _methods_in_words(description: str) -> str:
    """``description`` as the client's developer should read it (RFC 6749 5.2: text): Authlib's
    list of methods in words; any other description as it is."""
    listed = _NO_METHOD.fullmatch(description)
    if listed is None:
        return description
    methods = ", ".join(re.findall(r"'([^']*)'", listed[1]))
    return f"Client authentication failed (methods accepted: {methods})."


_REPEATED = "Parameters must not be repeated."


def _has_repeats(request: OAuth2Request) -> bool:
    """Whether a parameter is repeated: RFC 6749 3.1 and 3.2 say none may be."""
    return any(len(values) > 1 for values in request.payload.datalist.values())


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


def _issue(client: Client, *, refresh: bool) -> ledger.Issue:
    """New credentials for ``client`` (a refresh token only if it may use the refresh grant)."""
    return ledger.Issue(
        tenant=current_tenant().slug,
        client_id=client.client_id,
        access_token=secrets.token_urlsafe(32),
        refresh_token=secrets.token_urlsafe(32) if refresh else None,
        expires_in=services().settings.access_token_ttl,
        now=utcnow(),
        deadline=commit_deadline(),
    )


def _token_response(issue: ledger.Issue, scope: str, with_refresh: bool) -> dict[str, Any]:
    """RFC 6749 5.1. Refresh tokens only with offline_access (OIDC Core 11): the ledger stored one
    only then, and a refresh rotates it whatever scope the access token asks (RFC 6749 6)."""
    token: dict[str, Any] = {"token_type": "Bearer", "access_token": issue.access_token,
                             "expires_in": issue.expires_in, "scope": scope}
    if with_refresh and issue.refresh_token:
        token["refresh_token"] = issue.refresh_token
    return token


def _is_active(account: Row[Any]) -> bool:
    return account.status == ledger.ACTIVE


class Grant:
    """A code or a refresh token as the grants see it: what it grants, the sign-in it carries
    (for the ID token), the account, and the token response once the ledger issued it (None:
    nothing was issued; Authlib's checks say why, or a concurrent use won the race)."""

    def __init__(self, row: Row[Any], *, client_id: str, scope: str, token: dict[str, Any] | None,
                 redirect_uri: str | None = None):
        self.account = row
        self.client_id = client_id
        self.scope = scope
        self.token = token
        self.redirect_uri = redirect_uri
        self.nonce: str | None = getattr(row, "nonce", None)
        self.claims: dict[str, Any] | None = row.claims
        self.auth_time: int = row.auth_time
        self.acr: str | None = row.acr
        self.amr: list[str] | None = row.amr
        self.sid: str | None = row.sid
        self.code_challenge: str | None = getattr(row, "code_challenge", None)
        self.code_challenge_method: str | None = getattr(row, "code_challenge_method", None)

    # What Authlib asks of an authorization code (AuthorizationCodeMixin) and a refresh token.
    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str] | None:
        return self.amr

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id


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
        code: Grant = grant.request.authorization_code
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


_NEW_CODE = insert(ledger.CODES)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @staticmethod
    def validate_no_multiple_request_parameter(_request) -> None:
        # Authlib refuses a repeat here, before it validated the client and the redirect URI,
        # so never to the client. A repeated client_id, redirect_uri or request_uri, which
        # leaves them unknown, does not come this far (idp.web.gate.ONCE_AT_AUTHORIZATION);
        # the others are refused to the client (validate_authorization_request).
        return None

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        if _has_repeats(self.request):
            # RFC 6749 3.1, 4.1.2.1: the client and its redirect URI are valid and single.
            raise InvalidRequestError(_REPEATED, redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        authentication = request.authentication if isinstance(request, StoredRequest) else None
        if authentication is None:
            # Codes are issued by authorization.authorize only, for a signed-in member.
            raise RuntimeError("An authorization code needs the member's authentication.")
        data = request.payload.data
        # A Core statement in the request's transaction: no object to build and flush.
        write(db(), _NEW_CODE, {
            "code_digest": token_digest(code),
            "tenant": current_tenant().slug,
            "client_id": request.client.client_id,
            "account_id": request.user.id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.scope,
            "nonce": data.get("nonce"),
            "claims": _claims_within(parse_claims_parameter(data.get("claims")), request.client),
            "auth_time": authentication.auth_time,
            "acr": authentication.acr,
            "amr": authentication.amr,
            "sid": authentication.sid,
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "expires_at": utcnow() + timedelta(seconds=services().settings.authorization_code_ttl),
        })
        # Back-Channel Logout 1.0 2.7: the client is told when this session ends.
        find_service(ProviderSessions).signed_in_to(authentication.sid, request.client.client_id)

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(32)

    def query_authorization_code(self, code: str, client: Client) -> Grant | None:
        """Redeem the code in one statement if it passes every check the provider can make
        before asking: the code is consumed and its token stored together, so that of concurrent
        redemptions one wins. Otherwise the code is looked at to answer why (RFC 6749 5.2),
        left to its owner if the request only got something wrong."""
        verifier = self.request.form.get("code_verifier")
        valid = bool(verifier) and CODE_VERIFIER_PATTERN.match(verifier) is not None
        redirect_uri = self.request.payload.redirect_uri
        issue = _issue(client, refresh=client.check_grant_type("refresh_token"))
        check_in_time()
        row = ledger.redeem_code(
            single_statements(), issue, code=code, redirect_uri=redirect_uri,
            challenge=create_s256_code_challenge(verifier) if valid else None,
            # RFC 7636 4.6 and RFC 9700 2.1.1: a code without challenge, to a client not held to
            # PKCE, and no verifier presented.
            bare_allowed=not verifier and not client.pkce_required,
            refresh_ttl=client.refresh_token_ttl or services().settings.refresh_token_ttl,
            family_id=secrets.token_hex(16),
        )
        if row is not None:
            token = _token_response(issue, row.scope, row.refresh)
            return Grant(row, client_id=client.client_id, scope=row.scope, token=token,
                         redirect_uri=redirect_uri)
        check_in_time()  # PostgreSQL refuses a claim that arrives after the deadline
        return self._unredeemed(code, client)

    def _unredeemed(self, code: str, client: Client) -> Grant | None:
        row = ledger.find_code(single_statements(), code, client.client_id)
        if row is None or row.expires_at <= utcnow():
            return None
        if row.consumed_at is not None:
            # RFC 6749 4.1.2: a code used twice revokes what it produced.
            ledger.revoke(single_statements(), Token.code_id == row.id, events.CODE_REUSED,
                          tenant=row.tenant, account_id=row.account_id, client_id=row.client_id)
            return None
        return Grant(row, client_id=row.client_id, scope=row.scope, token=None,
                     redirect_uri=row.redirect_uri)

    @hooked
    def create_token_response(self):
        code: Grant = self.request.authorization_code
        user = self.authenticate_user(code)
        if not user:
            raise InvalidGrantError("There is no 'user' for this code.")
        if code.token is None:
            # Every check passed only now: a concurrent redemption consumed the code meanwhile.
            raise InvalidGrantError("Invalid 'code' in request.")
        self.request.user = user
        return 200, code.token, self.TOKEN_RESPONSE_HEADER

    def authenticate_user(self, authorization_code: Grant):
        account = authorization_code.account
        return account if _is_active(account) else None


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> Grant | None:
        """Rotate the refresh token in one statement if it is usable by this client for the scope
        asked: the old one marked, the family's next token stored. Otherwise the token is looked
        at to answer why; a rotated one presented again revokes its family (RFC 9700 4.14.2)."""
        client: Client = self.request.client
        scope = self.request.payload.scope or None
        issue = _issue(client, refresh=True)
        check_in_time()
        row = ledger.rotate_refresh_token(single_statements(), issue, refresh_token=refresh_token,
                                          scope=scope)
        if row is not None:
            granted = scope or row.granted
            return Grant(row, client_id=client.client_id, scope=row.granted,
                         token=_token_response(issue, granted, True))
        check_in_time()  # PostgreSQL refuses a rotation that arrives after the deadline
        return self._unrotated(refresh_token)

    def _unrotated(self, refresh_token: str) -> Grant | None:
        row = ledger.find_token(single_statements(), refresh_token, current_tenant().slug)
        if row is None or row.kind != "refresh_token":
            return None
        if row.rotated_at is not None and row.revoked_at is None:
            # A rotated refresh token presented again: stolen or replayed.
            ledger.revoke(single_statements(), Token.family_id == row.family_id,
                          events.REFRESH_REUSED, tenant=row.token_tenant, account_id=row.account_id,
                          client_id=row.client_id)
            return None
        if not _refresh_usable(row):
            return None
        return Grant(row, client_id=row.client_id, scope=_granted(row), token=None)

    @hooked
    def create_token_response(self):
        previous: Grant = self.request.refresh_token
        user = self.authenticate_user(previous)
        if previous.token is None:
            # Every check passed only now: a concurrent use rotated the token meanwhile.
            raise InvalidGrantError()
        self.request.user = user
        return 200, previous.token, self.TOKEN_RESPONSE_HEADER

    def authenticate_user(self, refresh_token: Grant):
        account = refresh_token.account
        if not _is_active(account):
            # RFC 6749 5.2: the grant is no longer valid; Authlib would say invalid_request.
            raise InvalidGrantError("The account is not active.")
        return account


def _granted(row: Row[Any]) -> str:
    """A token row's grant: the refresh token's scope (see Token.refresh_scope)."""
    return row.refresh_scope or row.scope


def _refresh_usable(row: Row[Any]) -> bool:
    return (row.revoked_at is None and row.rotated_at is None
            and row.refresh_expires_at is not None and row.refresh_expires_at > utcnow())


class OpenIDConnect(OpenIDCode):
    """ID tokens signed by the single active key, with the tenant as issuer, from the code grant
    and from the refresh grant (OIDC Core 12.2: same subject, audience and sign-in, no nonce)."""

    def exists_nonce(self, nonce: str, request) -> bool:
        # Nonce replay is the relying party's check (OIDC Core 3.1.3.7 step 11).
        return False

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        # Authlib's version asks the key store three times (alg, header, key): a key
        # activated in between would sign under another key's kid. One snapshot per
        # token keeps the header's kid and alg, at_hash and the signature together.
        signer = services().keystore.signer()
        claims = self.get_compatible_claims(request)
        # The code's, or at a refresh the family's, which the code started (its nonce excepted).
        claims.update(self.get_authorization_code_claims(request.authorization_code or request.refresh_token))
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

    def get_authorization_code_claims(self, authorization_code: Grant) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if authorization_code.sid:
            claims["sid"] = authorization_code.sid
        # OIDC Core 5.5: the claims requested by name for the ID token were kept with the code,
        # which this hook sees and generate_user_info does not.
        claims.update(user_claims(authorization_code.account, "", authorization_code.claims, "id_token"))
        return claims

    def generate_user_info(self, user: Row[Any], scope: str) -> UserInfo:
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


class PresentedToken:
    """A token row as presented to an endpoint: ``kind`` says which of its two credentials it was
    (an access token, or the refresh token issued with it); ``account`` has what the endpoint
    needs of the account."""

    def __init__(self, row: Row[Any]):
        self.row = row
        self.account = row
        self.kind: str = row.kind
        self.client_id: str = row.client_id

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return _granted(self.row) if self.kind == "refresh_token" else self.row.scope

    @property
    def expires_at(self) -> datetime:
        if self.kind == "refresh_token":
            return self.row.refresh_expires_at
        return self.row.issued_at + timedelta(seconds=self.row.expires_in)

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None


def _presented(token_string: Any) -> bool:
    return isinstance(token_string, str) and len(token_string) <= 200


class _TokenLookup(TokenEndpoint):
    def check_params(self, request, client) -> None:
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError:
            raise UnsupportedTokenType() from None


class Revocation(_TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def create_endpoint_response(self, request):
        # Authlib's looks the token up, then revokes it: here one statement does both, with the
        # audit event. Revoking a refresh token ends its family; an access token ends its own
        # row, which also holds the refresh token issued with it (RFC 7009 2.1 allows both).
        client = self.authenticate_endpoint_client(request)
        self.check_params(request, client)
        token_string = request.form["token"]
        if not _presented(token_string):
            return 200, {}, default_json_headers
        check_in_time()
        revoked = ledger.revoke_presented(single_statements(), token_string, tenant=current_tenant().slug,
                                          client_id=client.client_id, now=utcnow(),
                                          deadline=commit_deadline())
        if revoked is not None and revoked.client_id != client.client_id:
            raise InvalidGrantError()
        if revoked is not None and not revoked.done:
            check_in_time()  # PostgreSQL refuses a revocation that arrives after the deadline
        return 200, {}, default_json_headers


def _epoch(value: datetime) -> int:
    # Stored timestamps are naive UTC; a naive .timestamp() would read them as local time.
    return int(value.replace(tzinfo=UTC).timestamp())


class Introspection(_TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        # Either credential, whatever the hint (RFC 7662 2.1: the hint only speeds a lookup up).
        if not _presented(token_string):
            return None
        row = ledger.find_token(single_statements(), token_string, current_tenant().slug)
        return None if row is None else PresentedToken(row)

    def check_permission(self, token: PresentedToken, client: Client, request) -> bool:
        # A client may introspect the tokens issued to it.
        return token.check_client(client)

    def create_introspection_payload(self, token: PresentedToken | None):
        # As at the userinfo endpoint, a disabled account's tokens are not active.
        if token is None or not _is_active(token.account):
            return {"active": False}
        if token.kind == "refresh_token":
            # Judged on its own lifetime: Authlib's check is the access token's,
            # which expires long before the refresh token stored on the same row.
            return self.introspect_token(token) if _refresh_usable(token.row) else {"active": False}
        return super().create_introspection_payload(token)

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        row = token.row
        expires = token.expires_at
        return {
            "active": True,
            "client_id": row.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.get_scope(),
            "sub": row.account_id,
            "aud": row.client_id,
            "iss": current_tenant().issuer,
            "iat": _epoch(row.issued_at),
            "exp": _epoch(expires) if expires else None,
            "auth_time": row.auth_time,
            "acr": row.acr,
        }


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> PresentedToken | None:
        return self.find(single_statements(), token_string, current_tenant().slug)

    @staticmethod
    def find(statements: Statements, token_string: str, tenant: str) -> PresentedToken | None:
        """The access token ``token_string`` of ``tenant``, as presented, if there is one."""
        if not _presented(token_string):
            return None
        row = ledger.find_access_token(statements, token_string, tenant)
        return None if row is None else PresentedToken(row)

    def validate_token(self, token, scopes, request):
        super().validate_token(token, scopes, request)
        if not _is_active(token.account):
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
            token: PresentedToken = self.resource_protector.acquire_token("openid")
        except (MissingAuthorizationError, UnsupportedTokenTypeError):
            raise BearerChallenge() from None
        except InsufficientScopeError:
            raise BearerChallenge("insufficient_scope", "The access token lacks the openid scope.",
                                  403, scope="openid") from None
        # OIDC Core 5.3.2: plain JSON, as no client registers userinfo_signed_response_alg
        # (Authlib's own __call__ would load the token's client only to look for it).
        return 200, token_user_info(token), default_json_headers


def token_user_info(token: PresentedToken) -> UserInfo:
    """The claims the token's scope releases and those its request named (OIDC Core 5.3.2, 5.5).

    Authlib's generate_user_info(user, scope) does not see the token, which holds the latter.
    """
    return UserInfo(user_claims(token.account, token.row.scope, token.row.claims, "userinfo"))


def read_userinfo(database: Database, tenant: str, environ: dict[str, Any],
                  _parameters: Parameters) -> Answer | None:
    """UserInfo's answer, before the application (idp.web.lane), to a read whose Authorization
    header has a bearer token (RFC 6750 2.1) that the view would accept: the same claims and
    header fields. None for anything else, which the view answers: a missing or refused token
    (its challenge, RFC 6750 3)."""
    parts = environ.get("HTTP_AUTHORIZATION", "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    statements = database.statements()
    try:
        token = access_tokens.find(statements, parts[1], tenant)
    finally:
        statements.close()
    if token is None:
        return None
    try:
        access_tokens.validate_token(token, ["openid"], None)
    except OAuth2Error:
        return None
    # As the view's answer is written (flask.json: keys sorted, non-ASCII escaped).
    return 200, default_json_headers, json.dumps(token_user_info(token), sort_keys=True).encode()


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


access_tokens = AccessTokenValidator()
resource_protector = UserInfoProtector()
resource_protector.register_token_validator(access_tokens)


def build_server(app) -> Provider:
    server = Provider(ClientCache(app.extensions["idp"].settings.client_cache_seconds))
    server.init_app(app)
    server.scopes_supported = list(SUPPORTED_SCOPES)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_grant(AuthorizationCodeGrant, [OpenIDConnect(require_nonce=False), S256Only()])
    server.register_grant(RefreshTokenGrant, [OpenIDConnect(require_nonce=False)])
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_endpoint(UserInfoResponder(resource_protector=resource_protector))
    server.register_endpoint(EndSession)
    return server


def current_server() -> Provider:
    return current_app.extensions["idp_oidc"]

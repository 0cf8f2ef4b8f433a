"""Clients (shaped for Authlib's client mixin), authorization codes, tokens and consents."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

# Authlib ships no type information (no py.typed marker).
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SUPPORTED_SCOPES = ("openid", "profile", "email", "phone", "member", "offline_access")


def token_digest(value: str) -> str:
    """Digest under which a high-entropy secret (token, code, client secret) is stored.

    These values carry 256 bits from a CSPRNG, so a fast hash is as strong as a
    slow one here and keeps every token call cheap; only the digest is stored.
    """
    return hashlib.sha256(value.encode()).hexdigest()


class Client(Base, ClientMixin):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Public keys for private_key_jwt, as a JWKS document.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # PKCE at the authorization endpoint (RFC 9700 2.1.1); only a confidential client may be exempt.
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The absolute lifetime of its refresh tokens, in seconds; None: IDP_REFRESH_TOKEN_TTL.
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer)
    # OpenID Connect Back-Channel Logout 1.0 2.2: where logout tokens are posted, and whether
    # the client needs their `sid` (every logout token carries it here, so this is informative).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    # Authorization requests only through the pushed authorization request endpoint (RFC 9126 6).
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def home_url(self) -> str | None:
        """Where the client's application is, for a link back to it: the origin of its first
        web redirect URI (registered by an operator, never read from a request); None for a
        client that has none (a native app's own scheme)."""
        for uri in self.redirect_uris or ():
            parts = urlsplit(uri)
            if parts.scheme in ("https", "http") and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}/"
        return None

    @property
    def pkce_required(self) -> bool:
        return self.is_public or self.require_pkce

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris or [])}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never guess: OIDC Core 3.1.2.1 makes redirect_uri REQUIRED.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scopes)
        return " ".join(s for s in scope_to_list(scope) or [] if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (OAuth 2.0 Security BCP 4.1.3).
        return redirect_uri in (self.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.secret_digest or not client_secret:
            return False
        return hmac.compare_digest(self.secret_digest, token_digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "refresh_token":
            return "offline_access" in self.scopes
        return grant_type == "authorization_code"


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(500))
    nonce: Mapped[str | None] = mapped_column(String(500))
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    # Marked, not deleted: a second use must find the code to revoke its tokens.
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime)


class Token(Base):
    """An access token and, with offline_access, its refresh token.

    Refreshing rotates: the old row is marked ``rotated_at`` and a new row of
    the same ``family_id`` is created. Presenting a rotated refresh token again
    revokes the whole family (OAuth 2.0 Security BCP 4.14.2).
    """

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    access_token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The access token's scope, and the refresh token's when it differs: a client may narrow an
    # access token at refresh, never the grant (RFC 6749 6), so None means "the same as scope".
    scope: Mapped[str] = mapped_column(String(500))
    refresh_scope: Mapped[str | None] = mapped_column(String(500))
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_in: Mapped[int] = mapped_column(Integer)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    code_id: Mapped[int | None] = mapped_column(Integer, index=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Claims the member allowed by name, through the `claims` request parameter (OIDC Core 5.5),
    # beyond those the consented scopes release.
    claims: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProviderSession(Base):
    """A member's sign-in in one browser: what the account page lists and what ends at logout.

    Its id is the ``sid`` of ID and logout tokens (OIDC Back-Channel Logout 1.0 2.1): random,
    unrelated to the browser's cookie, and kept when the cookie's id changes.
    """

    __tablename__ = "provider_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # The browser's User-Agent at sign-in, shown in words on the account page.
    user_agent: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    end_reason: Mapped[str | None] = mapped_column(String(64))


class SessionClient(Base):
    """A client a provider session signed in to (a code issued to it): told when the session ends."""

    __tablename__ = "session_clients"

    sid: Mapped[str] = mapped_column(ForeignKey("provider_sessions.sid", ondelete="CASCADE"),
                                     primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"),
                                           primary_key=True)
    first_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

"""The demo relying-party portal: a real OpenID Connect client of one tenant.

`idp demo` starts one portal per tenant so that a newcomer can watch a whole
sign-in from the relying party's side: the authorization request (PKCE S256,
``state``, ``nonce``) pushed to the provider (RFC 9126), the validated ID token, the userinfo response, a
refresh, and RP-initiated logout. The portal only ever talks to the provider
over HTTP, through Authlib's Flask client, exactly as a real portal would.

Tokens stay on the portal's side: the signed cookie session only carries a
random handle to them (see ``SignedInStore``), because an ID token, a JWT
access token and their claims together overflow the 4 KB a browser keeps per
cookie, and an oversized cookie is silently dropped.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

import requests

# Authlib ships no type information (no py.typed) and its stubs, types-Authlib, are not installed.
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc import jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import KeySet

from idp.favicon import add_favicon

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "portal"

#: Everything the provider offers a first-party portal (SPEC §8).
SCOPE = "openid profile email phone member offline_access"

#: Authorization request parameters a caller of ``/login`` may pass through, so
#: that tests and the demo can ask for step-up (``acr_values``), re-authentication
#: (``prompt=login``, ``max_age``) and the like. OIDC Core 3.1.2.1.
AUTHORIZE_PASSTHROUGH = ("acr_values", "prompt", "max_age", "login_hint", "ui_locales")

#: ID token claims shown first, in this order; the others follow alphabetically.
CLAIM_ORDER = (
    "sub", "iss", "aud", "azp", "acr", "amr", "auth_time", "iat", "exp",
    "member_number", "tenant", "role", "given_name", "family_name", "birthdate",
    "email", "email_verified", "phone_number", "phone_number_verified",
)  # fmt: skip
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
PARIS = ZoneInfo("Europe/Paris")
TIMESTAMP_CLAIMS = frozenset({"iat", "exp", "nbf", "auth_time", "updated_at"})

_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_ERRORS_FROM_PROVIDER_STATUS = 400
_PROVIDER_UNREACHABLE_STATUS = 502

# What a member should read for the error codes they are likely to meet.
ERROR_EXPLANATIONS = {
    "access_denied": "La connexion a été annulée ou refusée.",
    "login_required": "Une connexion est nécessaire pour continuer.",
    "consent_required": "Votre accord est nécessaire pour continuer.",
    "interaction_required": "Le fournisseur d’identité a besoin d’une action de votre part.",
    "invalid_request": "La demande de connexion est incorrecte.",
    "invalid_scope": "Les informations demandées ne sont pas autorisées pour ce portail.",
    "unauthorized_client": "Ce portail n’est pas autorisé à utiliser ce mode de connexion.",
    "server_error": "Le fournisseur d’identité a rencontré une erreur.",
    "temporarily_unavailable": "Le service est momentanément indisponible.",
    "mismatching_state": (
        "Cette réponse ne correspond à aucune demande de connexion en cours : "
        "le lien a peut-être expiré ou a été ouvert dans un autre navigateur."
    ),
    "issuer_mismatch": (
        "La réponse ne vient pas du fournisseur d’identité attendu ; "
        "elle a été refusée par précaution."
    ),
    "invalid_id_token": "Le jeton d’identité reçu n’est pas valide ; il a été refusé.",
    "invalid_grant": "L’autorisation a expiré ou a déjà été utilisée.",
    "invalid_csrf_token": "Le formulaire a expiré. Veuillez recommencer.",
    "invalid_client": "Ce portail n’a pas pu s’identifier auprès du fournisseur d’identité.",
}

bp = Blueprint("portal", __name__)


@dataclass(frozen=True)
class PortalSettings:
    """What makes one portal differ from the other: its tenant and its client."""

    tenant: str
    brand: str
    portal_name: str
    issuer: str
    client_id: str
    base_url: str
    primary_color: str

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.base_url}/"

    @property
    def backchannel_logout_uri(self) -> str:
        return f"{self.base_url}/backchannel-logout"

    @property
    def register_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/register"

    @property
    def account_url(self) -> str:
        """The member's account page on the provider (password, email, mobile, devices)."""
        return f"{self.issuer.rstrip('/')}/account"


class SignedInStore:
    """The signed-in members' tokens and claims, in this process's memory.

    Keyed by a random handle kept in the cookie session. The demo runs in one
    process, so memory is the right place; the oldest entries go first once
    ``capacity`` is reached, so abandoned sessions cannot grow it forever.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ended: OrderedDict[str, float] = OrderedDict()
        # The latest logout tokens received, newest first, shown on the home page.
        self.notifications: deque[dict[str, Any]] = deque(maxlen=5)
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> str:
        handle = secrets.token_urlsafe(32)
        with self._lock:
            self._records[handle] = record
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)
        return handle

    def get(self, handle: str | None) -> dict[str, Any] | None:
        if not handle:
            return None
        with self._lock:
            return self._records.get(handle)

    def pop(self, handle: str | None) -> dict[str, Any] | None:
        if not handle:
            return None
        with self._lock:
            return self._records.pop(handle, None)

    def end_for(self, sid: str | None, sub: str | None, at: float) -> int:
        """Sign out the members a logout token names (by ``sid``, else every session of ``sub``);
        their handles remember when, for the page they see next. How many were signed in."""
        with self._lock:
            ended = [handle for handle, record in self._records.items()
                     if (sid and record["claims"].get("sid") == sid)
                     or (not sid and sub and record["claims"].get("sub") == sub)]
            for handle in ended:
                del self._records[handle]
                self._ended[handle] = at
            while len(self._ended) > self._capacity:
                self._ended.popitem(last=False)
            self.notifications.appendleft(
                {"at": at, "sid": sid, "sub": sub, "sessions": len(ended)})
            return len(ended)

    def ended_at(self, handle: str | None) -> float | None:
        """When the provider signed this handle's member out, if it did."""
        if not handle:
            return None
        with self._lock:
            return self._ended.get(handle)


@dataclass(frozen=True)
class _Portal:
    settings: PortalSettings
    store: SignedInStore


def create_portal(
    *,
    tenant: str,
    brand: str,
    portal_name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    base_url: str,
    primary_color: str = "#00539b",
) -> Flask:
    """Build the demo portal of one tenant: a confidential OIDC client of ``issuer``.

    ``base_url`` is where the portal itself is served (``http://localhost:5001``);
    the client must be registered with ``{base_url}/callback`` as redirect URI,
    ``{base_url}/`` as post-logout redirect URI and ``{base_url}/backchannel-logout`` as
    back-channel logout URI.
    """
    if not _HEX_COLOR.fullmatch(primary_color):
        raise ValueError(f"primary_color must look like #00539b, not {primary_color!r}")
    base_url = base_url.rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
        raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
    if urlsplit(issuer).scheme not in ("http", "https"):
        raise ValueError(f"issuer must be an absolute http(s) URL, not {issuer!r}")

    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=None)
    add_favicon(app)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.config.update(
        # A new key per process: restarting the demo signs everybody out, which is fine.
        SECRET_KEY=secrets.token_bytes(32),
        # Every demo app runs on localhost, and browsers share cookies across ports:
        # each portal needs its own cookie name or they would overwrite each other.
        SESSION_COOKIE_NAME=f"portal-{tenant}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=base_url.startswith("https://"),
    )

    oauth = OAuth(app)
    oauth.register(
        name="idp",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": 10,  # seconds, for every back-channel call
        },
    )

    settings = PortalSettings(
        tenant=tenant,
        brand=brand,
        portal_name=portal_name,
        issuer=issuer,
        client_id=client_id,
        base_url=base_url,
        primary_color=primary_color,
    )
    app.extensions["idp_portal"] = _Portal(settings=settings, store=SignedInStore())
    app.register_blueprint(bp)
    app.after_request(_security_headers)

    @app.context_processor
    def _portal_context() -> dict[str, Any]:
        return {"portal": settings}

    return app


# --- views -----------------------------------------------------------------


@bp.get("/")
def home():
    portal = _portal()
    record = portal.store.get(session.get("handle"))
    if record is None and request.args.get("state"):
        _confirm_logout()
    notifications = [{**item, "at": _clock_time(item["at"])} for item in portal.store.notifications]
    if record is None:
        ended = portal.store.ended_at(session.get("handle"))
        return render_template("home.html", signed_in=False, notifications=notifications,
                               signed_out_by_provider=_clock_time(ended) if ended else None)

    claims = record["claims"]
    userinfo = record.get("userinfo") or {}
    tokens = record["tokens"]
    return render_template(
        "home.html",
        signed_in=True,
        given_name=claims.get("given_name") or userinfo.get("given_name"),
        claim_rows=_rows(claims),
        userinfo_rows=_rows(userinfo) if userinfo else [],
        userinfo_error=record.get("userinfo_error"),
        expires=_expiry(tokens.get("expires_at")),
        scope=tokens.get("scope", ""),
        has_refresh_token=bool(tokens.get("refresh_token")),
        refreshed_at=_format_time(record["refreshed_at"]) if record.get("refreshed_at") else None,
        pushed=record.get("pushed"),
        csrf_token=_csrf_token(),
        notifications=notifications,
    )


@bp.get("/login")
def login():
    extra = {name: value for name in AUTHORIZE_PASSTHROUGH if (value := request.args.get(name))}
    _forget_abandoned_logins()
    client = _client()
    redirect_uri = _portal().settings.redirect_uri
    try:
        # PKCE S256 and state come from Authlib; the nonce binds the ID token to
        # this browser's request (OIDC Core 3.1.2.1). All three are kept in the
        # session until the callback.
        request_data = client.create_authorization_url(
            redirect_uri=redirect_uri, nonce=secrets.token_urlsafe(32), **extra)
        authorization_endpoint = client.load_server_metadata()["authorization_endpoint"]
        pushed = _push(request_data["url"])
    except (requests.RequestException, ValueError, KeyError):
        # KeyError: the provider's metadata lacks an endpoint.
        return _provider_unreachable()
    if pushed.status_code != 201 or "request_uri" not in (answer := _json(pushed)):
        error = _json(pushed)
        return _error_page(error.get("error"), error.get("error_description"),
                           _ERRORS_FROM_PROVIDER_STATUS)
    # Kept with the pending sign-in, to be shown once signed in.
    pushed_request = {"request_uri": answer["request_uri"], "expires_in": answer.get("expires_in")}
    client.save_authorize_data(redirect_uri=redirect_uri, pushed=pushed_request, **request_data)
    # RFC 9126 4: the browser carries only the client id and the reference to the request.
    return redirect(add_params_to_uri(authorization_endpoint, [
        ("client_id", client.client_id), ("request_uri", answer["request_uri"])]))


def _push(authorization_url: str) -> requests.Response:
    """Push the authorization request's parameters to the provider, authenticated as at its
    token endpoint (RFC 9126 2.1): they never travel through the browser."""
    client = _client()
    endpoint = client.load_server_metadata()["pushed_authorization_request_endpoint"]
    # RFC 6749 2.3.1: the id and secret are form-encoded before they go into Basic credentials.
    credentials = (quote(client.client_id, safe=""), quote(client.client_secret, safe=""))
    return requests.post(endpoint, data=parse_qsl(urlsplit(authorization_url).query),
                         auth=credentials, timeout=10)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@bp.get("/callback")
def callback():
    client = _client()
    state = request.args.get("state")
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError):
        return _provider_unreachable()

    # RFC 9207 §2.4: check the issuer of the response, success or error, before
    # anything else, so a response from another provider cannot be mixed up.
    issuer = request.args.get("iss")
    expected = metadata.get("issuer")
    issuer_required = metadata.get("authorization_response_iss_parameter_supported")
    if (issuer is not None and issuer != expected) or (issuer is None and issuer_required):
        _forget_state(state)
        return _error_page(
            "issuer_mismatch",
            f"iss reçu : {issuer or '(absent)'} ; attendu : {expected}",
            _ERRORS_FROM_PROVIDER_STATUS,
        )

    if "error" in request.args:
        _forget_state(state)
        return _error_page(
            request.args["error"],
            request.args.get("error_description"),
            _ERRORS_FROM_PROVIDER_STATUS,
        )

    pending = client.framework.get_state_data(session, state) if state else None
    try:
        # Exchanges the code with the PKCE verifier, then validates the ID token:
        # signature against the JWKS, iss, aud, exp, iat and the nonce.
        token = client.authorize_access_token()
    except JoseError as exc:
        return _error_page("invalid_id_token", str(exc), _ERRORS_FROM_PROVIDER_STATUS)
    except AuthlibBaseError as exc:
        return _error_page(exc.error, exc.description, _ERRORS_FROM_PROVIDER_STATUS)
    except (requests.RequestException, ValueError):
        return _provider_unreachable()

    claims = token.pop("userinfo", None)
    if claims is None:
        return _error_page(
            "invalid_id_token",
            "La réponse du point de jeton ne contient pas de jeton d’identité.",
            _ERRORS_FROM_PROVIDER_STATUS,
        )

    record = {
        "claims": dict(claims),
        "tokens": _keep_tokens(token),
        "refreshed_at": None,
        "pushed": (pending or {}).get("pushed"),
    }
    _load_userinfo(record)

    portal = _portal()
    portal.store.pop(session.get("handle"))
    # A fresh session at every sign-in: nothing from before it carries over.
    session.clear()
    session["handle"] = portal.store.add(record)
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for(".home"))


@bp.post("/refresh")
def refresh():
    if not _csrf_ok():
        return _error_page("invalid_csrf_token", None, 400)
    record = _portal().store.get(session.get("handle"))
    if record is None:
        return redirect(url_for(".home"), 303)
    refresh_token = record["tokens"].get("refresh_token")
    if not refresh_token:
        flash(
            "Aucun jeton de rafraîchissement : la portée offline_access n’a pas été accordée.",
            "error",
        )
        return redirect(url_for(".home"), 303)

    client = _client()
    try:
        # RFC 6749 §6; no scope parameter, so the grant keeps the scope it had.
        token = client.fetch_access_token(
            grant_type="refresh_token", refresh_token=refresh_token, scope=None
        )
        claims = _refreshed_id_token_claims(token, record["claims"])
    except JoseError as exc:
        flash(f"Le nouveau jeton d’identité a été refusé : {exc}", "error")
        return redirect(url_for(".home"), 303)
    except AuthlibBaseError as exc:
        detail = f" ({exc.description})" if exc.description else ""
        flash(f"Le rafraîchissement a échoué : {exc.error}{detail}", "error")
        return redirect(url_for(".home"), 303)
    except (requests.RequestException, ValueError):
        flash("Le fournisseur d’identité est injoignable. Réessayez dans un instant.", "error")
        return redirect(url_for(".home"), 303)

    tokens = _keep_tokens(token)
    # RFC 6749 §6: without a new refresh token in the answer, the old one stays valid.
    tokens.setdefault("refresh_token", refresh_token)
    tokens.setdefault("id_token", record["tokens"].get("id_token"))
    tokens.setdefault("scope", record["tokens"].get("scope"))
    record.update(claims=claims, tokens=tokens, refreshed_at=time.time())
    _load_userinfo(record)
    expiry = _expiry(tokens.get("expires_at"))
    message = "Jetons rafraîchis."
    if expiry:
        message += f" Le nouveau jeton d’accès expire le {expiry['at']}."
    flash(message, "success")
    return redirect(url_for(".home"), 303)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    # No CSRF check: signing someone out does them no harm, and a GET works too.
    portal = _portal()
    record = portal.store.pop(session.get("handle"))
    session.clear()
    id_token = record["tokens"].get("id_token") if record else None
    try:
        # OIDC RP-Initiated Logout 1.0 §2; Authlib adds a state it checks on return.
        response = _client().logout_redirect(
            post_logout_redirect_uri=portal.settings.post_logout_redirect_uri,
            id_token_hint=id_token,
            client_id=portal.settings.client_id,
        )
    except (requests.RequestException, ValueError, RuntimeError):
        # No discovery or no end_session_endpoint: at least the portal is signed out.
        flash("Votre session du portail est fermée, mais pas celle du fournisseur d’identité.", "error")
        return redirect(url_for(".home"), 303)
    if request.method == "POST":
        response.status_code = 303
    return response


@bp.post("/backchannel-logout")
def backchannel_logout():
    """OpenID Connect Back-Channel Logout 1.0 2.5-2.8: the provider says a session ended.

    The logout token is validated as 2.6 asks (signature against the provider's JWKS, ``typ``,
    ``iss``, ``aud``, ``iat``/``exp``, the logout event, a ``sub`` or ``sid``, no ``nonce``);
    then the portal's sessions it names end. 200 when done, 400 with an error otherwise.
    """
    token = request.form.get("logout_token", "")
    try:
        claims = _validated_logout_token(token)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        return {"error": "invalid_request", "error_description": str(exc)[:200]}, 400
    except (requests.RequestException, RuntimeError):
        return {"error": "temporarily_unavailable"}, 503
    _portal().store.end_for(claims.get("sid"), claims.get("sub"), time.time())
    return "", 200


@bp.get("/portal.css")
def stylesheet():
    color = _portal().settings.primary_color
    body = render_template(
        "portal.css",
        primary=color,
        on_primary=_readable_on(color),
        link=color if _contrast(color, "#ffffff") >= 4.5 else "#1a1a1a",
    )
    return body, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "no-cache"}


# --- helpers ---------------------------------------------------------------


def _portal() -> _Portal:
    return current_app.extensions["idp_portal"]


def _client():
    return current_app.extensions["authlib.integrations.flask_client"].idp


def _forget_state(state: str | None) -> None:
    if state:
        _client().framework.clear_state_data(session, state)


def _forget_abandoned_logins(keep: int = 2) -> None:
    """Keep only the ``keep`` newest pending sign-ins before starting another one.

    Authlib keeps each pending request (verifier, nonce, URL) in the session
    for an hour; a member clicking "Se connecter" again and again would
    otherwise grow the cookie past what a browser accepts.
    """
    prefix = f"_state_{_client().name}_"
    pending = sorted(
        (key for key in session if key.startswith(prefix)),
        key=lambda key: session[key].get("exp", 0),
    )
    for key in pending[: max(0, len(pending) - keep)]:
        session.pop(key)


def _confirm_logout() -> None:
    """Tell the member the provider signed them out, if ``state`` is the one we sent."""
    try:
        _client().validate_logout_response()
    except AuthlibBaseError:
        return
    flash("Déconnexion réussie. À bientôt !", "success")


def _validated_logout_token(token: str) -> dict[str, Any]:
    client = _client()
    metadata = client.load_server_metadata()
    keys = KeySet.import_key_set(client.fetch_jwk_set())
    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    decoded = jwt.decode(token, keys, algorithms=algorithms)
    # 2.4: explicitly typed, so that an ID token cannot pass for a logout token.
    if decoded.header.get("typ") != "logout+jwt":
        raise ValueError("typ must be logout+jwt")
    claims = decoded.claims
    now = int(time.time())
    registry = jwt.JWTClaimsRegistry(
        leeway=60, iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": _portal().settings.client_id},
        iat={"essential": True}, exp={"essential": True}, jti={"essential": True})
    registry.validate(claims)
    if claims["iat"] > now + 60:
        raise ValueError("iat is in the future")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise ValueError("the back-channel logout event is missing")
    if "nonce" in claims:
        raise ValueError("a logout token must not carry a nonce")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise ValueError("the logout token names neither sid nor sub")
    return claims


def _clock_time(timestamp: float) -> str:
    """The time of day in Paris, as the portal's page says it."""
    return datetime.fromtimestamp(timestamp, PARIS).strftime("%H:%M:%S")


def _keep_tokens(token: dict[str, Any]) -> dict[str, Any]:
    names = ("access_token", "token_type", "refresh_token", "id_token", "expires_at", "scope")
    return {name: token[name] for name in names if token.get(name) is not None}


def _load_userinfo(record: dict[str, Any]) -> None:
    """Call the userinfo endpoint with the current access token."""
    record["userinfo"], record["userinfo_error"] = None, None
    try:
        userinfo = dict(_client().userinfo(token=record["tokens"]))
    except (AuthlibBaseError, requests.RequestException, ValueError, KeyError) as exc:
        record["userinfo_error"] = f"Le point userinfo n’a pas répondu : {exc}"
        return
    # OIDC Core 5.3.2: a userinfo answer about someone else must not be used.
    if userinfo.get("sub") != record["claims"].get("sub"):
        record["userinfo_error"] = "Réponse userinfo refusée : son sub diffère de celui du jeton."
        return
    record["userinfo"] = userinfo


def _refreshed_id_token_claims(token: dict[str, Any], previous: dict[str, Any]) -> dict:
    """Validate the ID token a refresh may return (OIDC Core 12.2).

    Same issuer, subject and audience as the first one; it may not carry a
    nonce, and if it does it must be the original one.
    """
    if not token.get("id_token"):
        return previous
    claims = dict(_client().parse_id_token(token, nonce=None))
    for name in ("iss", "sub", "aud"):
        if claims.get(name) != previous.get(name):
            raise InvalidClaimError(name)
    if "nonce" in claims and claims["nonce"] != previous.get("nonce"):
        raise InvalidClaimError("nonce")
    return claims


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf_token", "")
    return isinstance(expected, str) and bool(expected) and hmac.compare_digest(expected, given)


def _error_page(code: str | None, description: str | None, status: int):
    code = code or "server_error"
    return (
        render_template(
            "error.html",
            error_code=code,
            error_description=description,
            explanation=ERROR_EXPLANATIONS.get(code),
        ),
        status,
    )


def _provider_unreachable():
    return _error_page(
        "temporarily_unavailable",
        f"Le fournisseur d’identité ({_portal().settings.issuer}) est injoignable.",
        _PROVIDER_UNREACHABLE_STATUS,
    )


def _rows(claims: dict[str, Any]) -> list[tuple[str, str]]:
    names = [name for name in CLAIM_ORDER if name in claims]
    names += sorted(name for name in claims if name not in CLAIM_ORDER)
    return [(name, _display(name, claims[name])) for name in names]


def _display(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in TIMESTAMP_CLAIMS and isinstance(value, int | float):
        return f"{value} ({_format_time(value)})"
    if isinstance(value, list | tuple):
        return ", ".join(_display(name, item) for item in value)
    if isinstance(value, dict):
        # communication_preferences: {"statements": "email", "marketing": False} reads
        # "statements : email ; marketing : false" (French spacing), not as a Python dict.
        return "\u00a0; ".join(f"{key}\u00a0: {_display(key, item)}" for key, item in value.items())
    if value is None:
        return "—"
    return str(value)


def _format_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d/%m/%Y à %H:%M:%S UTC")


def _expiry(expires_at: float | None) -> dict[str, Any] | None:
    if not expires_at:
        return None
    return {"at": _format_time(expires_at), "in": max(0, int(expires_at - time.time()))}


def _security_headers(response):
    issuer = urlsplit(_portal().settings.issuer)
    headers = response.headers
    # The logout form's POST is redirected to the provider, and CSP form-action
    # applies to redirects after a form submission.
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action 'self' {issuer.scheme}://{issuer.netloc}; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # The callback URL carries the authorization code: never leak it in a Referer.
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cache-Control", "no-store")
    return response


def _luminance(color: str) -> float:
    # WCAG 2.1 relative luminance.
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(first: str, second: str) -> float:
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _readable_on(color: str) -> str:
    """White or near-black text, whichever reads better on ``color``."""
    return "#ffffff" if _contrast(color, "#ffffff") >= _contrast(color, "#1a1a1a") else "#1a1a1a"

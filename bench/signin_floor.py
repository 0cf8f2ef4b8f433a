"""The floor of a member's sign-in on this stack: the requests of a code flow, answered with as
little as the stack allows, for ``bench.floor``.

The requests are those the bench's driver sends to our provider (``bench.driver.OurFlows``),
and the answers have the same shape:

- ``GET /malakoff/authorize``: the request checked against the client (redirect URI, S256
  challenge, ``openid``), parked in Redis under a new interaction (one SET), and the sign-in
  page in the answer, rendered by Jinja, its form bound to the browser by a cookie and an HMAC
  (against login CSRF);
- ``POST /malakoff/login``: the form's HMAC checked, the interaction taken from Redis once
  (GETDEL), the account read by its email (one prepared SELECT), the password verified with
  the provider's own check (``idp.accounts.hashing``: argon2id in the worker's one block of its
  memory); then, from a trusted browser, the code stored by the provider's own statement (one
  prepared INSERT), the session stored in Redis (one SET), and a 303 to the client with the
  code;
- from another browser, a code by email first: the sign-in kept in Redis under a new
  reference, a page to choose where the code goes, the choice (the code's digest in Redis, its
  email queued in the outbox with the worker's wake-up, one statement; ours' outbox worker
  sends it), a page to type it, and the code checked and taken once, which signs in as above;
- ``POST /malakoff/token``: the client's secret checked (Basic), the code redeemed by the
  provider's ledger (``idp.oidc.ledger.redeem_code``: one statement that consumes it and
  stores the token), and an RS256 ID token signed with joserfc.

It leaves out everything a floor can: Flask, Flask-WTF and Authlib (the checks above are
written out), the input gate, the rate limits and the count of a code's wrong tries, the
trusted device's own check (the cookie's presence is taken for trust), the email's templates,
the audit rows, the session's list of clients, the language, the request deadline. What the
provider must spend on the same sign-in is at least this: it is a measure, not a server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from jinja2 import Environment
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import bindparam, func, insert, literal_column, select
from werkzeug.http import dump_cookie, parse_cookie

from bench import seed
from idp.accounts.hashing import PasswordHasher
from idp.accounts.levels import ACR_OTP, ACR_PASSWORD
from idp.channels.models import Message
from idp.config import Settings
from idp.db import utcnow
from idp.oidc import ledger
from idp.oidc.models import token_digest
from idp.web.headers import UNCACHED

PREFIX = f"/{seed.TENANT}"
PATHS = {"authorize": f"{PREFIX}/authorize", "login": f"{PREFIX}/login", "token": f"{PREFIX}/token",
         "choose": f"{PREFIX}/code/choose", "verify": f"{PREFIX}/code/verify"}
# The cookie a trusted browser has: the floor takes its presence for trust, and asks the others a code.
DEVICE_COOKIE = f"idp-device-{seed.TENANT}"
BROWSER_COOKIE = "floor-browser"
SESSION_COOKIE = "floor-session"
TTL = 3600
# JSON as PostgreSQL takes it: the floor's statements run without SQLAlchemy's type processing.
AMR = {ACR_PASSWORD: json.dumps(["pwd"]), ACR_OTP: json.dumps(["pwd", "otp", "mail"])}
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

_ACCOUNTS = ledger.ACCOUNTS.c
_BY_EMAIL = select(_ACCOUNTS.id, _ACCOUNTS.email, _ACCOUNTS.password_hash, _ACCOUNTS.status).where(
    _ACCOUNTS.tenant == bindparam("tenant"), _ACCOUNTS.email == bindparam("email"))
_CODE_FIELDS = ("code_digest", "tenant", "client_id", "account_id", "redirect_uri", "scope", "nonce",
                "claims", "auth_time", "acr", "amr", "sid", "code_challenge", "code_challenge_method",
                "created_at", "expires_at")
# The provider's code row (``idp.oidc.server``'s), its values all given.
_STORE_CODE = insert(ledger.CODES).values({name: bindparam(name) for name in _CODE_FIELDS}).returning(
    ledger.CODES.c.id)

_MESSAGE_FIELDS = ("tenant", "channel", "template", "recipient", "subject", "body_text", "status", "attempts",
                   "created_at", "next_attempt_at", "expires_at")
_MESSAGES = insert(Message.__table__).values({name: bindparam(name) for name in _MESSAGE_FIELDS})
# The code's email queued and the outbox's worker woken (``idp.channels.dispatch``) in one statement.
_QUEUE_CODE = select(func.pg_notify("idp_messages", "")).select_from(
    _MESSAGES.returning(literal_column("id")).cte("queued"))

_PAGE = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connexion — Espace Client · Malakoff Humanis</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><main><h1>Connexion à votre Espace Client</h1>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}" novalidate>
<input name="interaction" type="hidden" value="{{ interaction }}">
<input id="csrf_token" name="csrf_token" type="hidden" value="{{ csrf }}">
{% if step == "password" %}
<label for="identifier">Adresse e-mail ou numéro d'adhérent</label>
<input id="identifier" name="identifier" type="text" autocomplete="username" required>
<label for="password">Mot de passe</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{% elif step == "choose" %}
<fieldset><legend>Où recevoir votre code ?</legend>
<label><input type="radio" name="channel" value="email" checked> Par e-mail</label></fieldset>
{% else %}
<label for="code">Code reçu par e-mail (6 chiffres)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>
{% endif %}
<button type="submit">Se connecter</button></form></main></body></html>""")

Answer = tuple[int, list[tuple[str, str]], bytes]


class SignInFloor:
    """The sign-in's answers, on the floor's prepared statements and one Redis client."""

    def __init__(self, statements: Any, redis_url: str, issuer: str, client_id: str, client_secret: str):
        self.statements = statements
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.issuer = issuer
        self.client_id = client_id
        self.secret_digest = token_digest(client_secret)
        self.key = secrets.token_bytes(32)
        self.signing_key = RSAKey.generate_key(2048, parameters={"kid": "floor"})
        # The provider's own check: argon2id in the worker's one block of its memory.
        self.hasher = PasswordHasher(time_cost=Settings.argon2_time_cost,
                                     memory_cost=Settings.argon2_memory_cost,
                                     parallelism=Settings.argon2_parallelism)

    def answer(self, environ: dict[str, Any], path: str) -> Answer:
        if path == PATHS["authorize"]:
            return self.authorize(environ)
        pending = dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("p", "")  # a code's pages
        if environ["REQUEST_METHOD"] == "GET":
            return self.code_page(environ, path, pending)
        form = dict(posted(environ))
        if path == PATHS["login"]:
            return self.login(environ, form)
        if path == PATHS["token"]:
            return self.token(environ, form)
        if path == PATHS["choose"]:
            return self.choose(environ, pending, form)
        return self.verify(environ, pending, form)

    def _form_mac(self, browser: str, interaction: str) -> str:
        return hmac.new(self.key, f"{browser}.{interaction}".encode(), hashlib.sha256).hexdigest()

    def _checked(self, environ: dict[str, Any], form: dict[str, str], interaction: str) -> bool:
        """Whether the form comes from this browser's page of this interaction (login CSRF)."""
        browser = parse_cookie(environ).get(BROWSER_COOKIE, "")
        return hmac.compare_digest(form.get("csrf_token", ""), self._form_mac(browser, interaction))

    def authorize(self, environ: dict[str, Any]) -> Answer:
        params = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        if (params.get("client_id") != self.client_id or params.get("redirect_uri") != seed.REDIRECT_URI
                or params.get("response_type") != "code" or "openid" not in params.get("scope", "").split()
                or params.get("code_challenge_method") != "S256" or not params.get("code_challenge")):
            return answer_page(400, "Cette demande de connexion n'est pas valable.")
        browser = parse_cookie(environ).get(BROWSER_COOKIE)
        headers = []
        if not browser:
            browser = secrets.token_urlsafe(16)
            cookie = dump_cookie(BROWSER_COOKIE, browser, httponly=True, samesite="Lax")
            headers.append(("Set-Cookie", cookie))
        interaction = self.park(params)
        status, page_headers, page = answer_page(200, None, "password", interaction,
                                                 self._form_mac(browser, interaction))
        return status, [*page_headers, *headers], page

    def park(self, params: dict[str, str]) -> str:
        """The authorization request kept in Redis under a new interaction, which names it."""
        interaction = secrets.token_urlsafe(16)
        self.redis.set(f"floor:i:{interaction}", json.dumps(params), ex=TTL)
        return interaction

    def login(self, environ: dict[str, Any], form: dict[str, str]) -> Answer:
        interaction = form.get("interaction", "")
        if not self._checked(environ, form, interaction):
            return answer_page(400, "Cette page a expiré.")
        parked = self.redis.getdel(f"floor:i:{interaction}")
        if parked is None:
            return answer_page(400, "Cette page a expiré.")
        params = json.loads(parked)
        account = self.statements.first(_BY_EMAIL, {"tenant": seed.TENANT,
                                                    "email": form.get("identifier", "").strip().lower()})
        if (account is None or account.status != ledger.ACTIVE or account.password_hash is None
                or not self.hasher.verify(account.password_hash, form.get("password", "")).ok):
            return answer_page(200, "Identifiant ou mot de passe incorrect.", "password")
        if parse_cookie(environ).get(DEVICE_COOKIE):
            return self._signed_in(account.id, params, ACR_PASSWORD)
        # A browser not trusted: the sign-in waits for a code, under a new reference.
        pending = secrets.token_urlsafe(16)
        self.redis.set(f"floor:p:{pending}", json.dumps({"account": account.id, "email": account.email,
                                                          "params": params}), ex=TTL)
        return 303, [("Location", f"{PATHS['choose']}?p={pending}"), *UNCACHED], b""

    def code_page(self, environ: dict[str, Any], path: str, pending: str) -> Answer:
        """The page that asks where the code goes, or the one that asks for it."""
        if not self.redis.exists(f"floor:p:{pending}"):
            return answer_page(400, "Cette page a expiré.")
        browser = parse_cookie(environ).get(BROWSER_COOKIE, "")
        step = "choose" if path == PATHS["choose"] else "code"
        return answer_page(200, None, step, pending, self._form_mac(browser, pending))

    def choose(self, environ: dict[str, Any], pending: str, form: dict[str, str]) -> Answer:
        """A code made, kept as its digest, and sent by email (the outbox's worker sends it)."""
        found = self.redis.get(f"floor:p:{pending}") if self._checked(environ, form, pending) else None
        if found is None or form.get("channel") != "email":
            return answer_page(400, "Cette page a expiré.")
        code, now = f"{secrets.randbelow(10 ** 6):06d}", utcnow()
        self.redis.set(f"floor:c:{pending}", token_digest(code), ex=600)
        self.statements.first(_QUEUE_CODE, {
            "tenant": seed.TENANT, "channel": "email", "template": "otp_code",
            "recipient": json.loads(found)["email"], "subject": "Votre code de connexion",
            "body_text": f"Votre code de connexion : {code}. Il expire dans 10 minutes.",
            "status": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now,
            "expires_at": now + timedelta(minutes=10),
        })
        return 303, [("Location", f"{PATHS['verify']}?p={pending}"), *UNCACHED], b""

    def verify(self, environ: dict[str, Any], pending: str, form: dict[str, str]) -> Answer:
        if not self._checked(environ, form, pending):
            return answer_page(400, "Cette page a expiré.")
        expected = self.redis.get(f"floor:c:{pending}")
        if expected is None or not hmac.compare_digest(expected.decode(), token_digest(form.get("code", ""))):
            return answer_page(200, "Ce code n'est pas le bon.", "code", pending, form.get("csrf_token", ""))
        found = self.redis.getdel(f"floor:p:{pending}")  # once
        if found is None:
            return answer_page(400, "Cette page a expiré.")
        self.redis.delete(f"floor:c:{pending}")
        waiting = json.loads(found)
        return self._signed_in(waiting["account"], waiting["params"], ACR_OTP)

    def _signed_in(self, account_id: str, params: dict[str, str], acr: str) -> Answer:
        """The code for the client, the session: the browser goes back to the client."""
        code, sid, now = secrets.token_urlsafe(32), secrets.token_urlsafe(16), utcnow()
        auth_time = int(time.time())
        self.statements.first(_STORE_CODE, {
            "code_digest": token_digest(code), "tenant": seed.TENANT, "client_id": self.client_id,
            "account_id": account_id, "redirect_uri": params["redirect_uri"], "scope": params["scope"],
            "nonce": params.get("nonce"), "claims": None, "auth_time": auth_time, "acr": acr,
            "amr": AMR[acr], "sid": sid, "code_challenge": params["code_challenge"],
            "code_challenge_method": "S256", "created_at": now, "expires_at": now + timedelta(seconds=TTL),
        })
        self.redis.set(f"floor:s:{sid}", json.dumps({"account": account_id, "auth_time": auth_time}), ex=TTL)
        query = urlencode({"code": code, "state": params.get("state", ""), "iss": self.issuer})
        return 303, [("Location", f"{params['redirect_uri']}?{query}"), *UNCACHED,
                     ("Set-Cookie", dump_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax"))], b""

    def token(self, environ: dict[str, Any], form: dict[str, str]) -> Answer:
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
        if (scheme != "Basic" or client_id != self.client_id
                or not hmac.compare_digest(token_digest(secret), self.secret_digest)):
            return _json(401, {"error": "invalid_client"})
        verifier = form.get("code_verifier", "")
        if form.get("grant_type") != "authorization_code" or not VERIFIER.match(verifier):
            return _json(400, {"error": "invalid_request"})
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        issue = ledger.Issue(tenant=seed.TENANT, client_id=client_id, access_token=secrets.token_urlsafe(32),
                             refresh_token=secrets.token_urlsafe(32), expires_in=TTL, now=utcnow(),
                             deadline=utcnow() + timedelta(seconds=30))
        row = ledger.redeem_code(self.statements, issue, code=form.get("code", ""),
                                 redirect_uri=form.get("redirect_uri"), challenge=challenge,
                                 bare_allowed=False, refresh_ttl=30 * 86400, family_id=secrets.token_hex(16))
        if row is None:
            return _json(400, {"error": "invalid_grant"})
        now = int(time.time())
        digest = hashlib.sha256(issue.access_token.encode()).digest()
        claims = {"iss": self.issuer, "sub": row.id, "aud": [client_id], "azp": client_id, "iat": now,
                  "exp": now + 300, "auth_time": row.auth_time, "nonce": row.nonce, "acr": row.acr,
                  "amr": row.amr, "sid": row.sid,
                  "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()}
        id_token = jwt.encode({"alg": "RS256", "kid": "floor", "typ": "JWT"}, claims, self.signing_key)
        token = {"token_type": "Bearer", "access_token": issue.access_token, "expires_in": TTL,
                 "scope": row.scope, "id_token": id_token}
        if row.refresh:
            token["refresh_token"] = issue.refresh_token
        return _json(200, token)


def posted(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The form a request posts (its body), blank values kept."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
    return parse_qsl(body, keep_blank_values=True)


def answer_page(status: int, error: str | None, step: str = "password", interaction: str = "",
                csrf: str = "") -> Answer:
    action = {"password": PATHS["login"], "choose": f"{PATHS['choose']}?p={interaction}",
              "code": f"{PATHS['verify']}?p={interaction}"}[step]
    page = _PAGE.render(error=error, step=step, action=action, interaction=interaction, csrf=csrf)
    return status, [("Content-Type", "text/html; charset=utf-8"), *UNCACHED], page.encode()


def _json(status: int, payload: dict[str, Any]) -> Answer:
    return status, [("Content-Type", "application/json"), *UNCACHED], json.dumps(payload).encode()


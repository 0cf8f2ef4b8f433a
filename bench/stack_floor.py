"""The floor of a member's sign-in on the provider's fixed stack, for ``bench.floor``: the answers
of ``bench.signin_floor``, given through the parts of the stack the provider is bound to use.

- **Flask** dispatches the pages' requests: its request context, its session (the cookie one,
  signed with itsdangerous: the cheapest the stack has).
- **Flask-WTF's forms** read and check each form the pages post, CSRF included (a token in the
  session, signed, timed), in place of the floor's own HMAC.
- **Authlib** checks the authorization request, through the provider's own grant
  (``idp.oidc.server``: the client, its redirect URI, PKCE with S256, the OpenID extension), and
  answers the token request through the provider's own token endpoint: the code redeemed by the
  ledger in one statement, the ID token signed with joserfc. The token request is answered
  outside Flask's request, as the provider's lane answers it; the client comes from the
  provider's per-process cache for both.

The rest is the floor's own (``bench.signin_floor``): the interaction and the session in Redis,
the account read by one prepared statement, the provider's argon2id check, the code stored by
one statement, the code by email, the pages rendered from one template. What a sign-in costs
here above the floor is what the stack's framework costs; what ours costs above this is the
product's own work (the rate limits, the audit, the trusted device's check, the language, the
time limit, the input gate, among others).
"""

from __future__ import annotations

import os
import secrets
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, request
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from wtforms import HiddenField, PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from bench import seed
from bench.floor_app import (
    CLIENT_VARIABLE,
    DATABASE_VARIABLE,
    ISSUER_VARIABLE,
    LOG_VARIABLE,
    REDIS_VARIABLE,
    SIGNIN_PATHS,
    THREADS_VARIABLE,
    FloorApp,
    FloorProvider,
)
from bench.signin_floor import PATHS, Answer, SignInFloor, answer_page, posted
from idp.config import Settings
from idp.oidc import server as oidc_server
from idp.oidc.server import AuthorizationCodeGrant, LaneRequest, OpenIDConnect, S256Only, StoredRequest
from idp.web.server import WsgiBridge, run_wsgi


class _LoginForm(FlaskForm):
    interaction = HiddenField(validators=[DataRequired()])
    identifier = StringField(validators=[DataRequired()])
    password = PasswordField(validators=[DataRequired()])


class _ChooseForm(FlaskForm):
    channel = RadioField(choices=[SelectChoice("email", "email")], validators=[DataRequired()])


class _CodeForm(FlaskForm):
    code = StringField(validators=[DataRequired()])


# The form each page posts, by path.
FORMS: dict[str, type[FlaskForm]] = {PATHS["login"]: _LoginForm, PATHS["choose"]: _ChooseForm,
                                     PATHS["verify"]: _CodeForm}


class _CachedProvider(FloorProvider):
    """The provider's authorization server, its clients from its per-process cache for the pages'
    requests too (the provider reads them afresh there)."""

    def query_client(self, client_id: str):
        return self.client_cache.get(oidc_server.single_statements, seed.TENANT, client_id)


class StackSignIn(SignInFloor):
    """The floor's sign-in, its forms Flask-WTF's, the authorization and token requests Authlib's.
    Its pages' methods run in a Flask request."""

    def __init__(self, statements: Any, redis_url: str, issuer: str, client_id: str, client_secret: str,
                 provider: FloorProvider):
        super().__init__(statements, redis_url, issuer, client_id, client_secret)
        self.provider = provider

    def _form_mac(self, browser: str, interaction: str) -> str:
        """The page's CSRF token: Flask-WTF's, bound to the browser's session."""
        return generate_csrf()

    def _checked(self, environ: dict[str, Any], form: dict[str, str], interaction: str) -> bool:
        """The form the page posts, checked by Flask-WTF (its CSRF token among its fields)."""
        return FORMS[request.path]().validate()

    def authorize(self, environ: dict[str, Any]) -> Answer:
        params = parse_qsl(environ.get("QUERY_STRING", ""))
        oauth_request = StoredRequest(environ, [list(pair) for pair in params])
        try:
            self.provider.get_consent_grant(request=oauth_request, end_user=None)
        except (OAuth2Error, ValueError):
            return answer_page(400, "Cette demande de connexion n'est pas valable.")
        if "openid" not in (oauth_request.scope or "").split():
            return answer_page(400, "Cette demande de connexion n'est pas valable.")
        return answer_page(200, None, "password", self.park(dict(params)), generate_csrf())

    def token(self, environ: dict[str, Any], form: dict[str, str]) -> Answer:
        status, headers, body = self.provider.create_token_response(LaneRequest(environ, list(form.items())))
        return status, list(headers), body


class StackFloorApp(FloorApp):
    """The floor application whose sign-in is ``StackSignIn``'s, its pages served by Flask."""

    def __init__(self, database_url: str, log_path: str, issuer: str, client: tuple[str, str],
                 redis_url: str):
        super().__init__(database_url, log_path, issuer, provider_kind=_CachedProvider)
        self.provider.register_grant(AuthorizationCodeGrant, [OpenIDConnect(require_nonce=False), S256Only()])
        signin = StackSignIn(self.statements, redis_url, issuer, *client, provider=self.provider)
        self.signin = signin
        # The provider's services the token endpoint asks for (its settings, its signing key),
        # given as the floor's, as ``_provider`` gives the provider's other names.
        services = SimpleNamespace(settings=Settings(), keystore=SimpleNamespace(
            signer=lambda: SimpleNamespace(alg="RS256", kid="floor", key=signin.signing_key)))
        oidc_server.services = lambda: services  # type: ignore[assignment]
        self.pages = _pages(signin)

    def answer(self, environ: dict[str, Any], path: str) -> Answer:
        if path == PATHS["token"]:
            return self.signin.token(environ, dict(posted(environ)))
        if path in SIGNIN_PATHS:
            status, headers, body = run_wsgi(self.pages, environ)
            # The floor's answer writes its own length.
            return status, [(k, v) for k, v in headers if k != "Content-Length"], body
        return super().answer(environ, path)


def _pages(signin: StackSignIn) -> Flask:
    """The Flask application of the sign-in's pages."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)

    def page() -> Response:
        path, environ = request.path, request.environ
        if path == PATHS["authorize"]:
            answer = signin.authorize(environ)
        elif request.method == "GET":
            answer = signin.code_page(environ, path, request.args.get("p", ""))
        elif path == PATHS["login"]:
            answer = signin.login(environ, request.form.to_dict())
        elif path == PATHS["choose"]:
            answer = signin.choose(environ, request.args.get("p", ""), request.form.to_dict())
        else:
            answer = signin.verify(environ, request.args.get("p", ""), request.form.to_dict())
        status, headers, body = answer
        return Response(body, status, headers)

    for name in ("authorize", "login", "choose", "verify"):
        app.add_url_rule(PATHS[name], f"floor_{name}", page, methods=["GET", "POST"])
    return app


def rsgi_app() -> WsgiBridge:
    """granian's factory: the stack's floor under the production server's bridge."""
    client = os.environ[CLIENT_VARIABLE].split(":", 1)
    app = StackFloorApp(os.environ[DATABASE_VARIABLE], os.environ[LOG_VARIABLE], os.environ[ISSUER_VARIABLE],
                        (client[0], client[1]), os.environ[REDIS_VARIABLE])
    return WsgiBridge(app, threads=int(os.environ[THREADS_VARIABLE]), max_body=1 << 20)

"""Protocol endpoints. ``api``: machine-to-machine (JSON, CORS); ``bp``: browser-facing."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from typing import Any

# Authlib and Flask-Babel ship no type information (no py.typed marker).
from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, abort, g, jsonify, redirect, request, session, url_for
from flask_cors import CORS

from idp.accounts.authn import current_authentication, sign_out
from idp.accounts.forms import ConfirmForm
from idp.accounts.levels import ACR_LEVELS
from idp.errors import SignInExpired
from idp.events import LOGOUT, record_event
from idp.extensions import (
    Services,
    autocommit,
    current_tenant,
    db,
    find_service,
    services,
    without_transaction,
)
from idp.keystore import ALGORITHMS
from idp.oidc import authorization
from idp.oidc.claims import SUPPORTED_CLAIMS
from idp.oidc.interactions import Interactions
from idp.oidc.models import SUPPORTED_SCOPES
from idp.oidc.server import AUTH_METHODS, LaneRequest, current_server, read_userinfo
from idp.tenancy import Tenant
from idp.web import csrf
from idp.web.gate import ONCE_AT_AUTHORIZATION
from idp.web.lane import Answer, Parameters, Route, document, served
from idp.web.locale import choose_ui_locale
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint
from idp.web.transactions import answering

api = tenant_blueprint("oidc_api", __name__)
bp = tenant_blueprint("oidc", __name__)

# CORS for browser-based clients on the endpoints they call (SPEC §9), on every answer of
# theirs (errors included, which such a client must read too); never on /authorize. Resolved
# once; a preflight is answered as Flask answers OPTIONS. Only for a request that says its
# origin, as a browser's cross-origin request always does (Fetch Standard 3.2.5): a client's
# back end sends none, and its answers carry no CORS fields it would not read.
CORS(api, resources=r"^/[^/]+/(?:token|par|userinfo|jwks|\.well-known/openid-configuration)$",
     origins="*", send_wildcard=True, always_send=False, allow_headers=["Authorization", "Content-Type"],
     max_age=600)


def _cacheable(document: bytes) -> Response:
    """A metadata document, readable from any origin, cacheable by clients and revalidated by
    ETag (RFC 9110 13.1.2: If-None-Match compares weakly)."""
    status, fields, body = served(document, services().settings.metadata_max_age).answer(
        request.headers.get("If-None-Match"))
    return Response(body, status=status, headers=fields)


def lane_routes(app: Flask) -> Iterator[Route]:
    """What ``Lane`` answers before the application, for every tenant: the metadata documents
    from their bytes (the same as ``discovery`` and ``jwks`` below), UserInfo's reads with a
    valid token (as ``userinfo`` below), the token endpoint's grants, introspection and
    revocation (through Authlib's endpoints, as their views, ``answer_in_lane``)."""
    collaborators: Services = app.extensions["idp"]
    max_age = collaborators.settings.metadata_max_age
    for slug, tenant in collaborators.tenants.items():
        yield document(f"/{slug}/.well-known/openid-configuration", "oidc_api.discovery", slug,
                       functools.partial(_discovery_document, tenant.issuer), max_age=max_age)
        yield document(f"/{slug}/jwks", "oidc_api.jwks", slug, collaborators.keystore.public_jwks_json,
                       max_age=max_age)
        yield Route(f"/{slug}/userinfo", "oidc_api.userinfo", slug, frozenset({"GET"}),
                    functools.partial(read_userinfo, collaborators.database, slug), same_origin_only=True)
        yield Route(f"/{slug}/token", "oidc_api.token", slug, frozenset({"POST"}),
                    functools.partial(answer_in_lane, app, None, tenant), form=True, same_origin_only=True)
        for path, view, endpoint in (("introspect", "oidc_api.introspect", "introspection"),
                                     ("revoke", "oidc_api.revoke", "revocation")):
            yield Route(f"/{slug}/{path}", view, slug, frozenset({"POST"}),
                        functools.partial(answer_in_lane, app, endpoint, tenant), form=True)


def answer_in_lane(app: Flask, endpoint: str | None, tenant: Tenant, environ: dict[str, Any],
                   parameters: Parameters) -> Answer | None:
    """The answer of Authlib's ``endpoint`` (None: the token endpoint), as its view gives it
    (errors included), to a form the lane read: in an application context, without a request
    context. None for what this blueprint's hook answers (``well_formed_request``)."""
    if not _well_formed(parameters, environ.get("HTTP_AUTHORIZATION")):
        return None
    with app.app_context():
        g.tenant = tenant
        without_transaction()
        answering(environ)
        oauth_request = LaneRequest(environ, parameters)
        if endpoint is None:
            return current_server().create_token_response(oauth_request)
        return current_server().create_endpoint_response(endpoint, oauth_request)


def _well_formed(params: Sequence[Sequence[str]], authorization_header: str | None) -> bool:
    """Parameters Authlib can take (printable, each of its grammar) and an Authorization header
    of two parts, if any."""
    return authorization.well_formed(params) and (
        authorization_header is None or len(authorization_header.split(None, 1)) == 2)


@api.before_request
def well_formed_request():
    """Malformed parameters or Authorization header are the client's error, answered here
    (Authlib assumes printable parameters and a two-part header)."""
    params = [[key, value] for key, values in request.values.lists() for value in values]
    header = request.headers.get("Authorization")
    if _well_formed(params, header):
        return None
    if not authorization.well_formed(params):
        return jsonify(error="invalid_request", error_description="Malformed parameters."), 400
    if request.endpoint == "oidc_api.userinfo":
        # RFC 6750 3.1
        response = jsonify(error="invalid_request", error_description="Malformed Authorization header.")
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_request"'
        return response, 400
    # RFC 6749 5.2
    response = jsonify(error="invalid_client", error_description="Malformed Authorization header.")
    response.headers["WWW-Authenticate"] = "Basic"
    return response, 401


@api.get("/.well-known/openid-configuration")
def discovery():
    return _cacheable(_discovery_document(current_tenant().issuer))


@functools.lru_cache(maxsize=32)
def _discovery_document(issuer: str) -> bytes:
    """OIDC Discovery 1.0 section 3, serialized once per issuer: it only changes with a release."""
    # The provider's keys sign with these; client assertions are verified with joserfc's
    # recommended algorithms, of which the clients' keys (asymmetric only) allow these two.
    signing_algs = list(ALGORITHMS)
    return json.dumps({
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        # RFC 9126 5: per client (require_pushed_authorization_requests), not for every one.
        "require_pushed_authorization_requests": False,
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/logout",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(authorization.RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        # RFC 8414 2: present wherever private_key_jwt is listed.
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": SUPPORTED_CLAIMS,
        "claims_parameter_supported": True,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "acr_values_supported": list(ACR_LEVELS),
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["fr-FR", "en"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }, separators=(",", ":")).encode()


@api.get("/jwks")
def jwks():
    return _cacheable(services().keystore.public_jwks_json())


@api.post("/token")
@autocommit
def token():
    return current_server().create_token_response()


@api.post("/par")
def pushed_authorization_request():
    return authorization.push()


@api.route("/userinfo", methods=["GET", "POST"])
@autocommit
def userinfo():
    return current_server().create_endpoint_response("userinfo")


@api.post("/revoke")
@autocommit
def revoke():
    return current_server().create_endpoint_response("revocation")


@api.post("/introspect")
@autocommit
def introspect():
    return current_server().create_endpoint_response("introspection")


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize():
    # OIDC Core 3.1.2.1: GET and POST are both supported; parameters in one place only.
    source = request.form if request.method == "POST" else request.args
    params = [[key, value] for key, values in source.lists() for value in values]
    if not authorization.well_formed(params, once=ONCE_AT_AUTHORIZATION):
        return authorization.error_page("invalid_request")
    if current_authentication(current_tenant()) is None:
        # No one signed in to this tenant here: the answer is the sign-in page or an error,
        # never a code, so the request only reads (its client).
        without_transaction()
    return authorization.authorize_request(params)


@bp.get("/authorize/restart")
def restart_pushed():
    return authorization.restart_pushed(request.args.get("token"))


@bp.get("/authorize/resume")
def resume():
    """A parked request resumed by a browser that an earlier version sent here (the sign-in
    pages now resume it in their own answer, ``InteractionApi.finish``): kept for the browsers
    in the middle of a sign-in during a rolling deploy."""
    interaction = find_service(Interactions).load(request.args.get("interaction"), current_tenant().slug)
    if interaction is None:
        raise SignInExpired()
    return authorization.authorize(interaction.params, interaction)


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt
def end_session():
    """RP-initiated logout 1.0: validate, ask the member to confirm, then sign out."""
    server = current_server()
    try:
        logout_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return authorization.error_page(error.error)
    pending = {
        "redirect_uri": logout_request.redirect_uri,
        "client": logout_request.client.name if logout_request.client else None,
    }
    session["logout"] = pending
    # RP-Initiated Logout 1.0 2: the language the portal asks for the confirmation page.
    choose_ui_locale(logout_request.ui_locales)
    return redirect(url_for("oidc.logout_confirm"), 303)


@bp.route("/logout/confirm", methods=["GET", "POST"])
def logout_confirm():
    pending = session.get("logout")
    if pending is None:
        abort(404)
    form = ConfirmForm()
    if form.validate_on_submit():
        tenant = current_tenant()
        session.pop("logout", None)
        if form.cancel.data:
            return redirect(pending["redirect_uri"] or url_for("oidc.logged_out"), 303)
        # Ends the provider session, revokes the tokens it granted (RP-Initiated Logout 1.0 2)
        # and tells the portals it signed in to (Back-Channel Logout 1.0 2.7).
        authentication = sign_out(tenant)
        if authentication:
            record_event(db(), LOGOUT, tenant=tenant.slug, account_id=authentication.account_id)
        return redirect(pending["redirect_uri"] or url_for("oidc.logged_out"), 303)
    signed_in = current_authentication(current_tenant()) is not None
    return render("logout.html", form=form, client_name=pending["client"], signed_in=signed_in)


@bp.get("/logout/done")
def logged_out():
    return render("logged_out.html")

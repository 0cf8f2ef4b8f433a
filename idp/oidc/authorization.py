"""The authorization endpoint's decisions: error, interaction, or a code for the client.

Authlib validates the request (client, redirect URI, response type, scope,
PKCE, prompt=none); this module adds what OIDC Core 3.1.2 asks of the
provider around it: max_age, id_token_hint, acr_values, consent, and the
response modes, always carrying ``iss`` (RFC 9207). The same validation serves
the pushed authorization request endpoint (RFC 9126), whose requests come back
to /authorize by their ``request_uri``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from typing import Any

# Authlib ships no type information (no py.typed marker).
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from idp.accounts.authn import session_account
from idp.accounts.levels import Authentication
from idp.accounts.models import Account
from idp.errors import SignInExpired
from idp.extensions import current_tenant, db, find_service, services
from idp.oidc import prompts
from idp.oidc.claims import InvalidClaimsParameter, parse_claims_parameter, requested_claim_names
from idp.oidc.interactions import Interaction, Interactions, page_in_place
from idp.oidc.models import Client, Consent
from idp.oidc.prompts import PromptContext, SignedIn
from idp.oidc.pushed import REQUEST_URI_PREFIX, PushedRequests
from idp.oidc.server import AUTH_METHODS, StoredRequest, current_server
from idp.tokens import PUSHED_RESTART, InvalidToken, TokenService
from idp.web.gate import Refused, protocol_parameters
from idp.web.locale import choose_ui_locale
from idp.web.rendering import render

RESPONSE_MODES = ("query", "fragment", "form_post")
MAX_PARAMETERS = 50
MAX_VALUE_LENGTH = 8192
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# authorization_codes.nonce (idp/oidc/models.py): a longer one could not be kept with the code.
MAX_NONCE_LENGTH = 500
# RFC 6749 A.7: what an error description may contain. Authlib echoes response_type
# and grant_type into descriptions, so those values must fit it.
ECHOABLE = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]{0,200}$")
ECHOED_PARAMETERS = ("response_type", "grant_type")
# How a client authenticates at the push endpoint: not part of the request kept (RFC 9126 2.1).
CLIENT_AUTHENTICATION = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


def well_formed(params: Sequence[Sequence[str]], *, once: Container[str] | None = None) -> bool:
    """Bounded, printable parameters, each of its grammar and once, or only those named in
    ``once`` (``idp.web.gate``): anything else is not worth a redirect to the client."""
    try:
        protocol_parameters(params, once=once)
    except Refused:
        return False
    return len(params) <= MAX_PARAMETERS and all(
        len(key) <= 64 and len(value) <= MAX_VALUE_LENGTH
        and not CONTROL_CHARACTERS.search(key) and not CONTROL_CHARACTERS.search(value)
        and (key not in ECHOED_PARAMETERS or ECHOABLE.match(value))
        for key, value in params
    )


class RequestNotSupported(OAuth2Error):
    error = "request_not_supported"


class RequestUriNotSupported(OAuth2Error):
    error = "request_uri_not_supported"


class RegistrationNotSupported(OAuth2Error):
    error = "registration_not_supported"


@dataclass
class _Context:
    response_mode: str
    state: str | None
    redirect_uri: str | None


def respond(redirect_uri: str, params: list[tuple[str, str]], response_mode: str) -> ResponseReturnValue:
    """Send the authorization response (or error) to the client, with iss (RFC 9207 2)."""
    params = [*params, ("iss", current_tenant().issuer)]
    if response_mode == "form_post":
        return render("form_post.html", redirect_uri=redirect_uri, params=params)
    location = add_params_to_uri(redirect_uri, params, fragment=response_mode == "fragment")
    return redirect(location, 303 if request.method == "POST" else 302)


def error_page(error_code: str) -> ResponseReturnValue:
    """The page a member sees for a client's request the provider cannot answer to the client
    (RFC 6749 4.1.2.1): what to do, in the member's language, and the error's code for the
    portal's team. Not the error's description: written for developers, in English, it may
    echo what the request carried (an unregistered redirect URI)."""
    if error_code in ("invalid_client", "unauthorized_client"):
        message = _("Le site qui vous a dirigé ici n’est pas reconnu. Retournez sur votre espace "
                    "pour vous connecter.")
    else:
        message = _("La demande transmise par votre espace n’est pas valide. Retournez sur votre "
                    "espace et réessayez ; si cela se reproduit, contactez votre service client.")
    return render("error.html", status=400, error_code=error_code, message=message,
                  protocol_error=True)


def error_response(error: OAuth2Error, context: _Context) -> ResponseReturnValue:
    """Redirect errors only to a validated redirect URI; otherwise show a page (RFC 6749 4.1.2.1)."""
    redirect_uri = error.redirect_uri or None
    if not redirect_uri:
        return error_page(error.error)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if context.state:
        params.append(("state", context.state))
    mode = context.response_mode if context.response_mode in RESPONSE_MODES else "query"
    return respond(redirect_uri, params, mode)


def _hint_subject(id_token_hint: str | None, redirect_uri: str) -> str | None:
    """The subject of an ID token we issued, expired or not (OIDC Core 3.1.2.1)."""
    if not id_token_hint:
        return None
    try:
        token = jwt.decode(id_token_hint, services().keystore.verification_keyset())
    except (JoseError, ValueError):
        raise InvalidRequestError("Invalid 'id_token_hint'.", redirect_uri=redirect_uri) from None
    if token.claims.get("iss") != current_tenant().issuer or not token.claims.get("sub"):
        raise InvalidRequestError("Invalid 'id_token_hint'.", redirect_uri=redirect_uri)
    return token.claims["sub"]


def _max_age(raw: str | None, redirect_uri: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequestError("'max_age' must be a non-negative integer.", redirect_uri=redirect_uri)
    return int(raw)


def _with_consent(checked: PromptContext, account: Account, client: Client) -> PromptContext:
    """The context with what the member consented to for this client (scopes, claims by name)."""
    consent = db().scalar(
        select(Consent).where(Consent.account_id == account.id, Consent.client_id == client.client_id)
    )
    if consent is None:
        return checked
    return replace(checked, consented_scopes=frozenset(consent.scopes),
                   consented_claims=frozenset(consent.claims or ()))


def _prompt_context(data: dict[str, str], granted_scope: str, signed_in: SignedIn | None, client: Client,
                    interaction: Interaction | None, redirect_uri: str) -> PromptContext:
    """The request's parameters, parsed; invalid ones are the client's error (OIDC Core 3.1.2.2)."""
    try:
        claims = parse_claims_parameter(data.get("claims"))
    except InvalidClaimsParameter as exc:
        raise InvalidRequestError(str(exc), redirect_uri=redirect_uri) from None
    return PromptContext(
        signed_in=signed_in,
        prompt=frozenset((data.get("prompt") or "").split()),
        max_age=_max_age(data.get("max_age"), redirect_uri),
        hint_subject=_hint_subject(data.get("id_token_hint"), redirect_uri),
        acr_values=tuple((data.get("acr_values") or "").split()),
        claims=claims,
        scopes=frozenset(granted_scope.split()),
        claim_names=frozenset(requested_claim_names(claims, client.scopes)),
        first_party=client.first_party,
        just_logged_in=bool(interaction and interaction.login_done),
        just_consented=bool(interaction and interaction.consent_done),
        now=time.time(),
    )


def _checked_request(oauth_request: StoredRequest, context: _Context, *, pushed: bool,
                     signed_in: SignedIn | None = None, interaction: Interaction | None = None,
                     ) -> tuple[Any, PromptContext]:
    """Validate an authorization request, at /authorize or when pushed (RFC 9126 2.1: "as it
    would an authorization request sent to the authorization endpoint"): its grant and its
    parsed parameters, or an OAuth2Error, with the redirect URI once it is known valid."""
    data = oauth_request.payload.data
    account = signed_in.account if signed_in else None
    grant = current_server().get_consent_grant(request=oauth_request, end_user=account)
    redirect_uri: str = grant.redirect_uri
    client: Client = oauth_request.client
    context.redirect_uri = redirect_uri
    if client.require_pushed_authorization_requests and not pushed:
        # RFC 9126 6: this client's requests are accepted only through the push endpoint.
        raise InvalidRequestError("This client must push its authorization requests.",
                                  redirect_uri=redirect_uri)
    if context.response_mode not in RESPONSE_MODES:
        context.response_mode = "query"
        raise InvalidRequestError("Unsupported 'response_mode'.", redirect_uri=redirect_uri)
    # OIDC Core 6: request objects are not supported.
    if "request" in data:
        raise RequestNotSupported(redirect_uri=redirect_uri)
    if "request_uri" in data:
        # OIDC Core 6.2 (a request object by reference); a pushed request's reference was
        # replaced by the request before (authorize_request).
        raise RequestUriNotSupported(redirect_uri=redirect_uri)
    if "registration" in data:
        raise RegistrationNotSupported(redirect_uri=redirect_uri)
    if "openid" not in (oauth_request.scope or "").split():
        raise InvalidRequestError("The 'openid' scope is required.", redirect_uri=redirect_uri)
    if len(data.get("nonce") or "") > MAX_NONCE_LENGTH:
        # Refused before the member signs in, not when the code is kept.
        raise InvalidRequestError("'nonce' is too long.", redirect_uri=redirect_uri)
    checked = _prompt_context(data, oauth_request.scope or "", signed_in, client, interaction,
                              redirect_uri)
    return grant, checked


def authorize(params: list[list[str]], interaction: Interaction | None = None, *,
              pushed: bool = False, request_uri: str | None = None) -> ResponseReturnValue:
    """Evaluate an authorization request and answer it; ``pushed``: it came through the pushed
    authorization request endpoint (``request_uri``: the reference the browser brought)."""
    tenant = current_tenant()
    pushed = pushed or bool(interaction and interaction.pushed)
    oauth_request = StoredRequest(request.environ, params)
    data = oauth_request.payload.data
    # A repeated state or response_mode cannot be told (the request is refused): the error goes
    # without a state, in the code flow's default mode.
    context = _Context(oauth_request.payload.single("response_mode") or "query",
                       oauth_request.payload.single("state"), None)
    found = session_account(db(), tenant)
    signed_in = SignedIn(*found) if found else None
    account = signed_in.account if signed_in else None

    try:
        grant, checked = _checked_request(oauth_request, context, pushed=pushed, signed_in=signed_in,
                                          interaction=interaction)
        redirect_uri: str = grant.redirect_uri
        client: Client = oauth_request.client

        login_reasons = prompts.reasons(prompts.LOGIN_CHECKS, checked)
        if login_reasons:
            # OIDC Core 3.1.2.6
            if "none" in checked.prompt:
                raise LoginRequiredError(redirect_uri=redirect_uri)
            prompt = prompts.login_prompt(checked, login_reasons)
            return _interact(interaction, params, prompt, login_reasons, data, pushed, request_uri)

        # The login checks passed, so a member is signed in. First-party clients never ask
        # (prompts.consent_missing): their consent is not looked up.
        if signed_in is not None and not client.first_party:
            checked = _with_consent(checked, signed_in.account, client)
        consent_reasons = prompts.reasons(prompts.CONSENT_CHECKS, checked)
        if consent_reasons:
            # OIDC Core 3.1.2.6
            if "none" in checked.prompt:
                raise ConsentRequiredError(redirect_uri=redirect_uri)
            return _interact(interaction, params, prompts.CONSENT, consent_reasons, data, pushed, request_uri)
        authentication = _stated_authentication(signed_in, checked, redirect_uri)
    except OAuth2Error as error:
        return error_response(error, context)
    except ValueError:
        # Authlib refuses to build an error whose description would echo characters RFC 6749
        # 4.1.2.1 forbids in error_description (an unregistered redirect_uri, say): the
        # request is invalid, and the redirect URI is not to be trusted.
        return error_response(InvalidRequestError(), _Context(context.response_mode, None, None))

    # Read back by AuthorizationCodeGrant.save_authorization_code.
    oauth_request.user = account
    oauth_request.authentication = authentication
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, oauth_request)
    db().commit()
    if interaction is not None:
        find_service(Interactions).finish(interaction)
    response_params = [("code", code)]
    if context.state:
        response_params.append(("state", context.state))
    return respond(redirect_uri, response_params, context.response_mode)


def authorize_request(params: list[list[str]]) -> ResponseReturnValue:
    """Answer a request to /authorize: a pushed request's reference, or a request of its own."""
    request_uri = next((value for key, value in params if key == "request_uri"), None)
    if request_uri is not None and request_uri.startswith(REQUEST_URI_PREFIX):
        return _authorize_pushed(request_uri, next((v for k, v in params if k == "client_id"), None))
    return authorize(params)


def _authorize_pushed(request_uri: str, client_id: str | None) -> ResponseReturnValue:
    """The pushed request ``request_uri`` stands for, used once, by the client that pushed it;
    the other parameters of the URL are ignored (RFC 9126 4). Its redirect URI is unknown until
    then, so a refusal is a page, not a redirect (RFC 6749 4.1.2.1)."""
    tenant = current_tenant()
    pushed = find_service(PushedRequests).take(tenant.slug, request_uri, client_id)
    if pushed is None:
        # A reload of the page it was answered with (RFC 9126 4 allows it), in the browser
        # that used it: the same sign-in, for as long as it is parked.
        parked = find_service(Interactions).pushed_as(request_uri, tenant.slug)
        if parked is not None and client_id == parked.param("client_id"):
            return _page(parked, in_place=True)
        if session_account(db(), tenant) is not None:
            # Its page reached again once the member is signed in (the Back button from the
            # portal): answered as any page of a sign-in that is over (``idp.web.errors``).
            raise SignInExpired()
        message = _("Cette demande de connexion a expiré ou a déjà servi. Retournez sur votre "
                    "espace pour vous connecter à nouveau.")
        return render("error.html", status=400, error_code="invalid_request_uri", message=message,
                      protocol_error=True)
    return authorize(pushed.params, pushed=True, request_uri=request_uri)


def restart_pushed(token: str | None) -> ResponseReturnValue:
    """A pushed request started again from the sign-in page once its time ran out (WCAG 2.2.1),
    with the request as the provider signed it when it parked it (``idp.signin.state``)."""
    try:
        restart = TokenService(services().settings.secret_key, PUSHED_RESTART).loads(token or "")
    except InvalidToken:
        raise SignInExpired() from None
    if restart.get("tenant") != current_tenant().slug:
        raise SignInExpired()
    return authorize(restart["params"], pushed=True)


def push() -> ResponseReturnValue:
    """The pushed authorization request endpoint (RFC 9126 2): the client authenticates as at
    the token endpoint, its request is validated as at /authorize, and kept for a
    ``request_uri``. Errors are answered as the token endpoint's (RFC 9126 2.3, RFC 6749 5.2),
    never sent to a redirect URI."""
    server = current_server()
    oauth_request = server.create_oauth2_request(request)
    try:
        client: Client = server.authenticate_client(oauth_request, AUTH_METHODS,
                                                    endpoint="pushed_authorization_request")
        params = [[key, value] for key, values in request.form.lists() for value in values
                  if key not in CLIENT_AUTHENTICATION]
        request_uri = _keep_pushed(client, params)
    except OAuth2Error as error:
        error.redirect_uri = None
        return server.handle_error_response(oauth_request, error)
    except ValueError:
        # As at /authorize: an error Authlib refuses to describe.
        return server.handle_error_response(oauth_request, InvalidRequestError())
    response = jsonify(request_uri=request_uri, expires_in=services().settings.pushed_request_ttl)
    response.headers["Cache-Control"] = "no-store"
    return response, 201


def _keep_pushed(client: Client, params: list[list[str]]) -> str:
    """Validate a pushed request of ``client`` and keep it; its ``request_uri``."""
    pushed_client_id = next((value for key, value in params if key == "client_id"), None)
    if pushed_client_id is None:
        # The client is known from its authentication; /authorize will need the id alongside.
        params = [["client_id", client.client_id], *params]
    elif pushed_client_id != client.client_id:
        raise InvalidRequestError("'client_id' is not the client that authenticated.")
    if any(key == "request_uri" for key, _value in params):
        # RFC 9126 2.1
        raise InvalidRequestError("'request_uri' cannot be pushed.")
    oauth_request = StoredRequest(request.environ, params)
    data = oauth_request.payload.data
    _checked_request(oauth_request, _Context(data.get("response_mode") or "query", None, None),
                     pushed=True)
    return find_service(PushedRequests).keep(current_tenant().slug, client.client_id, params)


def _stated_authentication(signed_in: SignedIn | None, checked: PromptContext,
                           redirect_uri: str) -> Authentication | None:
    """The sign-in as the code will state it, with the acr an essential request asks for."""
    if signed_in is None:
        return None
    authentication = signed_in.authentication
    acr = prompts.granted_acr(authentication.acr, checked.claims)
    if acr is None:
        # OIDC Core 5.5.1.1: an essential acr that cannot be met is a failed authentication.
        raise AccessDeniedError("The authentication level required was not reached.",
                                redirect_uri=redirect_uri)
    return replace(authentication, acr=acr) if acr != authentication.acr else authentication


def deny(interaction: Interaction) -> ResponseReturnValue:
    """The member refused consent: the client gets access_denied (RFC 6749 4.1.2.1)."""
    find_service(Interactions).finish(interaction)
    # The redirect URI was validated before the interaction was created.
    redirect_uri = interaction.param("redirect_uri")
    context = _Context(interaction.param("response_mode") or "query", interaction.param("state"),
                       redirect_uri)
    return error_response(AccessDeniedError(redirect_uri=redirect_uri), context)


def _interact(interaction: Interaction | None, params: list[list[str]], prompt: str, reasons: list[str],
              data: dict[str, str], pushed: bool, request_uri: str | None) -> ResponseReturnValue:
    store = find_service(Interactions)
    new = interaction is None
    if interaction is None:
        interaction = store.start(current_tenant().slug, params, prompt, reasons, pushed=pushed,
                                  request_uri=request_uri)
    else:
        interaction.prompt, interaction.reasons = prompt, reasons
        store.save(interaction)
    choose_ui_locale(data.get("ui_locales"))
    return _page(interaction, in_place=new)


def _page(interaction: Interaction, *, in_place: bool) -> ResponseReturnValue:
    """The page a parked request needs: in this very answer if ``in_place`` (the answer to
    /authorize itself, which a reload asks again) and its prompt's page is shown in place;
    otherwise a redirect to the page's own address."""
    # The page shows a form: its CSRF token goes in the session this answer writes anyway,
    # so that the page, which only reads the session, does not write it again.
    generate_csrf()
    page = page_in_place(interaction.prompt) if in_place else None
    if page is not None:
        return page(interaction)
    endpoint = {prompts.LOGIN: "signin.login", prompts.STEP_UP: "signin.step_up",
                prompts.CONSENT: "accounts.consent"}[interaction.prompt]
    return redirect(url_for(endpoint, interaction=interaction.id), 303)

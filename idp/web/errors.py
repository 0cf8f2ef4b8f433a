"""The one error boundary of the HTTP layer: every failure becomes a page or a JSON answer.

Views raise; they do not build error pages. A page's scripts and the APIs get JSON
(``error``, ``error_description``), browsers get the tenant's error page with a way onward.
Refusals that lift with time (rate limits, a dependency down) say when, in the page and in
``Retry-After``. A code asked again within its cooldown is no failure: the page that asked
for it says when a new one may be (``resend_wait``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app, g, jsonify, request, session, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BuildError

from idp.accounts.authn import session_account
from idp.accounts.levels import Authentication
from idp.errors import SignInExpired
from idp.extensions import db, find_service, services
from idp.oidc.sessions import ProviderSessions
from idp.ratelimit import TooManyAttempts
from idp.signin.services import SmsCountryRefused
from idp.store import StoreUnavailable
from idp.tenancy import Tenant
from idp.web.rendering import render, wait_words
from idp.web.transactions import TooLate

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER = 30
# A dependency down: the store, PostgreSQL, or no connection free in the pool within its timeout.
DEPENDENCY_DOWN = (StoreUnavailable, OperationalError, PoolTimeout)


def onward(endpoint: str) -> Callable:
    """Where a refused request's page leads back to, for a view only reached by POST
    (for instance "send a new code" leads back to the code page)."""

    def mark(view: Callable) -> Callable:
        view.onward_endpoint = endpoint  # type: ignore[attr-defined]
        return view

    return mark


def answers_json(view: Callable) -> Callable:
    """Marks a view that answers JSON only (a page's script calls it): its refusals are JSON
    too, whatever the request's ``Accept`` (a malformed body, a CSRF token missing…)."""
    view.answers_json = True  # type: ignore[attr-defined]
    return view


def wants_json() -> bool:
    """The API, the views that answer JSON only (``answers_json``) and the pages' scripts (they
    ask for JSON) get errors as JSON."""
    view = current_app.view_functions.get(request.endpoint or "")
    return (request.blueprint == "oidc_api" or getattr(view, "answers_json", False)
            or request.accept_mimetypes.best == "application/json")


def error_answer(status: int, code: str, message: str, *, retry_after: int | None = None,
                 onward_url: str | None = None, onward_label: str | None = None):
    """The answer to a refusal: JSON for scripts and the API, else the error page, with a link
    onward (``onward_label``, by default "Continuer") where there is one."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if wants_json():
        return jsonify(error=code, error_description=message), status, headers
    body, status = render("error.html", status=status, error_code=code, message=message,
                          onward_url=onward_url, onward_label=onward_label or _("Continuer"))
    return body, status, headers


def _onward_url() -> str | None:
    """The page to go back to after a refusal: the one its view names (``onward``), else the
    form's own page for a form posted to the address that shows it."""
    view = current_app.view_functions.get(request.endpoint or "")
    endpoint = getattr(view, "onward_endpoint", None)
    if endpoint is not None:
        try:
            return url_for(endpoint)
        except BuildError:
            return None
    shows_itself = request.url_rule is not None and "GET" in (request.url_rule.methods or ())
    return request.path if request.method == "POST" and shows_itself else None


def resend_wait(retry_after: int) -> str:
    """What a member who asks for a new code too soon is told: when they may ask again."""
    return _("Vous avez demandé un code il y a peu. Vous pourrez en demander un nouveau dans "
             "%(wait)s.", wait=wait_words(retry_after))


def _too_many(limit: str, retry_after: int) -> tuple[str, str]:
    """The error code and the member's words for a limit reached, by the limit's name."""
    family = limit.split(":")[0]
    if family == "login":
        # Waits grow from 30 seconds (``ratelimit.LOGIN_PER_IDENTIFIER``): seconds below a minute.
        wait = wait_words(retry_after)
        return "too_many_attempts", _(
            "Trop de tentatives. Par sécurité, la connexion reprendra dans %(wait)s. "
            "Pour la débloquer tout de suite, réinitialisez votre mot de passe.", wait=wait)
    if family == "otp-send":
        return "too_many_attempts", resend_wait(retry_after)
    if family == "otp-verify":
        return "too_many_attempts", _(
            "Trop de codes incorrects. Patientez quelques minutes avant de réessayer.")
    if family == "sms":
        return "too_many_sms", _(
            "Trop de SMS ont été envoyés ces dernières minutes : l’envoi de codes par SMS "
            "reprendra dans %(wait)s.", wait=wait_words(retry_after))
    if family == "sign-in-extend":
        return "too_many_extensions", _(
            "Vous avez déjà eu plus de temps plusieurs fois. Terminez votre connexion, ou "
            "recommencez-la plus tard.")
    return "too_many_attempts", _(
        "Trop de tentatives. Veuillez réessayer dans %(wait)s.", wait=wait_words(retry_after))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc):
        # The usual cause: the session holding the form's token ended (idle timeout).
        code = "expired" if getattr(session, "new", True) else "invalid_request"
        return error_answer(400, code, _("Votre session a expiré. Veuillez recommencer."),
                            onward_url=request.path if request.method == "POST" else None)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            404: _("Cette page n’existe pas."),
            405: _("Cette méthode n’est pas autorisée ici."),
            413: _("La requête est trop volumineuse."),
        }
        if g.get("tenant") is None:
            # /<tenant>/no-such-page: still the tenant's page, with its help and its way back.
            g.tenant = services().tenants.get(request.path.strip("/").split("/")[0])
        code = "not_found" if exc.code == 404 else "invalid_request"
        message = messages.get(exc.code or 400, _("La requête n’est pas valide."))
        body, status, headers = error_answer(exc.code or 400, code, message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110 15.5.6: a 405 names the methods the resource allows.
            headers["Allow"] = ", ".join(exc.valid_methods)
        return body, status, headers

    @app.errorhandler(SignInExpired)
    def sign_in_expired(_exc):
        tenant = g.get("tenant")
        try:
            signed_in = session_account(db(), tenant) if tenant is not None and not wants_json() else None
            if signed_in is not None:
                return _already_signed_in(tenant, signed_in[0])
        except DEPENDENCY_DOWN as exc:
            # An answer from here is not answered again by the handlers below: said here.
            return unavailable(exc)
        return error_answer(400, "expired", _(
            "Votre demande de connexion a expiré. Retournez sur votre espace, ou connectez-vous "
            "à nouveau."), onward_url=url_for("signin.login") if tenant is not None else None,
            onward_label=_("Me connecter"))

    @app.errorhandler(TooManyAttempts)
    def too_many_attempts(exc: TooManyAttempts):
        code, message = _too_many(exc.limit, exc.retry_after)
        if exc.limit.split(":")[0] == "login" and g.get("tenant"):
            # The message offers a reset, which unblocks at once: the page leads there.
            return error_answer(429, code, message, retry_after=exc.retry_after,
                                onward_url=url_for("recovery.forgot_password"),
                                onward_label=_("Réinitialiser mon mot de passe"))
        return error_answer(429, code, message, retry_after=exc.retry_after,
                            onward_url=_onward_url())

    @app.errorhandler(SmsCountryRefused)
    def sms_country_refused(_exc):
        # Forms that take a new number say it next to the field; this answers a number
        # already on an account (imported, or saved before its country was refused).
        return error_answer(400, "invalid_request", _(
            "Nous ne pouvons pas envoyer de SMS vers ce numéro de téléphone. Choisissez de "
            "recevoir le code par e-mail, ou indiquez un numéro de mobile français."),
            onward_url=_onward_url())

    def unavailable(exc):
        log.error("dependency unavailable: %s", type(exc).__name__)
        return _unavailable()

    for kind in DEPENDENCY_DOWN:
        app.register_error_handler(kind, unavailable)

    @app.errorhandler(TooLate)
    def too_late(exc: TooLate):
        # Whoever still reads the answer (a client with a longer wait) may try again.
        log.warning("request not committed: %s", exc)
        return _unavailable()

    def unavailable_on_save(response) -> None:
        log.error("dependency unavailable: session store (on save)")
        body, status, headers = _unavailable()
        response.set_data(body.get_data() if hasattr(body, "get_data") else body)
        response.status_code = status
        response.headers.pop("Location", None)
        response.headers.pop("Set-Cookie", None)
        response.headers.update(headers)
        response.headers["Content-Type"] = (
            "application/json" if wants_json() else "text/html; charset=utf-8")

    app.session_interface.on_unavailable = unavailable_on_save  # type: ignore[attr-defined]

    @app.errorhandler(Exception)
    def internal(exc):
        log.exception("unhandled error", exc_info=exc)
        return error_answer(500, "server_error",
                            _("Une erreur inattendue est survenue. Veuillez réessayer."))


def _already_signed_in(tenant: Tenant, authentication: Authentication):
    """A page of a sign-in that is over (the Back button from the portal), in a browser signed
    in to the tenant: it says so, and leads back to the application this session signed in to
    last (its registered address), else to the brand's portal, and to the account page."""
    client = find_service(ProviderSessions).latest_client(authentication.sid)
    home = client.home_url if client is not None else None
    back_url: str | None = None
    back_label = ""
    if client is not None and home is not None:
        back_url, back_label = home, _("Retourner sur %(name)s", name=client.name)
    elif tenant.portal_url:
        back_url, back_label = tenant.portal_url, _("Aller à mon %(portal)s", portal=tenant.portal_name)
    return render("already_signed_in.html", back_url=back_url, back_label=back_label)


def _unavailable():
    return error_answer(
        503, "temporarily_unavailable",
        _("Le service est momentanément indisponible. Veuillez réessayer dans quelques minutes."),
        retry_after=UNAVAILABLE_RETRY_AFTER)

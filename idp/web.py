"""HTTP plumbing shared by every page: tenants in URLs, locale, headers, errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request, session
from flask_babel import Babel, get_locale, ngettext
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, NotFound

from idp import deadlines, logs
from idp.extensions import services
from idp.store import StoreUnavailable
from idp.tenancy import LOCALES

log = logging.getLogger(__name__)

csrf = CSRFProtect()
babel = Babel()

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def bind_tenant(_endpoint: str | None, values: dict | None) -> None:
    """URL preprocessor for tenant blueprints: /<tenant>/… selects the issuer."""
    slug = (values or {}).pop("tenant", None)
    tenant = services().tenants.get(slug or "")
    if tenant is None:
        raise NotFound()
    g.tenant = tenant


def tenant_url_defaults(_endpoint: str, values: dict) -> None:
    if "tenant" not in values and g.get("tenant") is not None:
        values["tenant"] = g.tenant.slug


def tenant_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint whose URLs live under /<tenant>/ and resolve the tenant first."""
    blueprint = Blueprint(name, import_name, url_prefix="/<tenant>")
    blueprint.url_value_preprocessor(bind_tenant)
    blueprint.url_defaults(tenant_url_defaults)
    return blueprint


def select_locale() -> str:
    """Explicit choice (?lang= or ui_locales, kept in the session), then the browser's."""
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        if not current_app.session_interface.is_null_session(session):  # the APIs keep none
            session["lang"] = chosen
        return chosen
    if session.get("lang") in LOCALES:
        return session["lang"]
    best = request.accept_languages.best_match(LOCALES)
    if best:
        return best
    tenant = g.get("tenant")
    return tenant.default_locale if tenant else "fr"


def choose_ui_locale(ui_locales: str | None) -> None:
    """OIDC Core 3.1.2.1 ui_locales: the first supported tag wins for the hosted pages."""
    for tag in (ui_locales or "").split():
        language = tag.split("-")[0].lower()
        if language in LOCALES:
            session["lang"] = language
            return


def render(name: str, status: int = 200, **context):
    """Render a page, the tenant's own version first, then the shared one."""
    tenant = g.get("tenant")
    candidates = [f"{tenant.slug}/{name}"] if tenant else []
    candidates.append(f"base/{name}")
    return render_template(candidates, **context), status


def _wants_json() -> bool:
    """The API, and the pages' scripts (they ask for JSON), get errors as JSON."""
    return request.blueprint == "oidc_api" or request.accept_mimetypes.best == "application/json"


def _error(status: int, code: str, message: str):
    if _wants_json():
        return jsonify(error=code, error_description=message), status
    return render("error.html", status=status, error_code=code, message=message)


def _unavailable():
    response, status = _error(
        503,
        "temporarily_unavailable",
        _("Le service est momentanément indisponible. Veuillez réessayer dans quelques minutes."),
    )
    return response, status, {"Retry-After": "30"}


def _security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # Pages and API answers carry personal data or tokens unless a view says otherwise.
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def _register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc):
        # The usual cause: the session holding the form's token ended (idle timeout).
        code = "expired" if getattr(session, "new", True) else "invalid_request"
        return _error(400, code, _("Votre session a expiré. Veuillez recommencer."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            404: _("Cette page n’existe pas."),
            405: _("Cette méthode n’est pas autorisée ici."),
            413: _("La requête est trop volumineuse."),
        }
        code = "not_found" if exc.code == 404 else "invalid_request"
        message = messages.get(exc.code or 400, _("La requête n’est pas valide."))
        return _error(exc.code or 400, code, message)

    @app.errorhandler(StoreUnavailable)
    @app.errorhandler(OperationalError)
    def unavailable(exc):
        log.error("dependency unavailable: %s", type(exc).__name__)
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
            "application/json" if _wants_json() else "text/html; charset=utf-8")

    app.session_interface.on_unavailable = unavailable_on_save

    @app.errorhandler(Exception)
    def internal(exc):
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "server_error", _("Une erreur inattendue est survenue. Veuillez réessayer."))


def init_app(app: Flask) -> None:
    from idp.accounts.contact_views import bp as contact_bp  # noqa: PLC0415
    from idp.accounts.recovery_views import bp as recovery_bp  # noqa: PLC0415
    from idp.accounts.registration_views import bp as registration_bp  # noqa: PLC0415
    from idp.accounts.views import bp as accounts_bp  # noqa: PLC0415
    from idp.mfa.views import bp as mfa_bp  # noqa: PLC0415
    from idp.oidc.server import build_server  # noqa: PLC0415
    from idp.oidc.views import api as oidc_api  # noqa: PLC0415
    from idp.oidc.views import bp as oidc_bp  # noqa: PLC0415
    from idp.ops import bp as ops_bp  # noqa: PLC0415
    from idp.pages import bp as pages_bp  # noqa: PLC0415
    from idp.passkeys.views import bp as passkeys_bp  # noqa: PLC0415

    app.extensions["idp_oidc"] = build_server(app)
    logs.init_app(app, app.extensions["idp"].settings.trusted_proxies)

    @app.before_request
    def store_must_be_readable():
        # Before CSRF checks (registered next), which would read the unreadable session.
        if getattr(session, "unavailable", False):
            raise StoreUnavailable("session store unreachable")

    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    for blueprint in (oidc_api, oidc_bp, accounts_bp, contact_bp, registration_bp, recovery_bp,
                      mfa_bp, pages_bp, passkeys_bp, ops_bp):
        app.register_blueprint(blueprint)
    csrf.exempt(oidc_api)
    app.after_request(_security_headers)
    _register_errors(app)

    @app.context_processor
    def page_context():
        return {"tenant": g.get("tenant"), "locale": str(get_locale()), "locales": LOCALES,
                "lang_url": _lang_url, "all_tenants": list(services().tenants.values()),
                "session_time": session_time}


@dataclass(frozen=True)
class SessionTime:
    """The inactivity limit of a page, what it says in words, and where to load the page afresh."""

    deadline: deadlines.Deadline
    message: str
    reload_url: str


def session_time() -> SessionTime | None:
    """The inactivity limit of a page whose forms hold a token of the session (WCAG 2.2.1).

    None for a page without such a form. Called by the layout after the page's content, so a
    form rendered above has made its token by then.
    """
    if "csrf_token" not in g:
        return None
    deadline = session_deadline()
    return SessionTime(deadline, session_time_message(deadline), request.path)


def session_deadline() -> deadlines.Deadline:
    """When the browser's session ends if nothing more happens, as of this response."""
    interface = current_app.session_interface
    return deadlines.session_deadline(interface.expires_in(session), interface.idle)


def session_time_message(deadline: deadlines.Deadline) -> str:
    return ngettext("Pour votre sécurité, cette page expire après %(num)s minute sans activité.",
                    "Pour votre sécurité, cette page expire après %(num)s minutes sans activité.",
                    deadline.lifetime_minutes)


def _lang_url(code: str) -> str:
    """This page in another language (the choice is kept in the session)."""
    args = {key: values for key, values in request.args.lists() if key != "lang"}
    args["lang"] = [code]
    return f"{request.path}?{urlencode(args, doseq=True)}"

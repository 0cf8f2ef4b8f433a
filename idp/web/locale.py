"""The language of the pages: an explicit choice, the client's ui_locales, then the browser's."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import current_app, g, request, session

from idp.tenancy import LOCALES


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


def lang_url(code: str) -> str:
    """This page in another language (the choice is kept in the session)."""
    args = {key: values for key, values in request.args.lists() if key != "lang"}
    args["lang"] = [code]
    return f"{request.path}?{urlencode(args, doseq=True)}"

"""HTTP plumbing shared by every page, one module per concern.

``gate`` (input no view has to cope with), ``tenants`` (URLs under /<tenant>/), ``locale``
(the pages' language), ``rendering`` (templates and what every layout gets), ``headers``
(security headers), ``errors`` (the one error boundary), ``transactions`` (one database
transaction per request), ``lane`` (the protocol API's busiest requests, answered before the application).
``init_app`` installs them; ``create_app`` registers the blueprints.
"""

from __future__ import annotations

from flask import Flask, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from idp import logs
from idp.store import StoreUnavailable
from idp.web import gate, lane
from idp.web.errors import register_error_handlers
from idp.web.headers import security_headers
from idp.web.locale import select_locale
from idp.web.rendering import TEMPLATE_FILTERS, TEMPLATE_GETTEXT, in_page_order, page_context

csrf = CSRFProtect()
babel = Babel()


def init_app(app: Flask, *, trusted_proxies: int) -> None:
    logs.init_app(app, trusted_proxies)
    app.before_request(lane.raise_failure)
    gate.install(app)

    @app.before_request
    def store_must_be_readable():
        # Before CSRF checks (registered next), which would read the unreadable session.
        if getattr(session, "unavailable", False):
            raise StoreUnavailable("session store unreachable")

    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.after_request(security_headers)
    register_error_handlers(app)
    app.context_processor(page_context)
    # Filters, not context: messages rendered by the worker and the commands use them too.
    app.jinja_env.filters.update(TEMPLATE_FILTERS)
    # A global, not context: the macros imported by pages see no context.
    app.jinja_env.globals["in_page_order"] = in_page_order
    # In place of those Flask-Babel's init_app installed: a page's catalogue found once.
    app.jinja_env.globals.update(TEMPLATE_GETTEXT)

"""The base of every form: Flask-WTF's, with WTForms' own messages translated once per process,
its CSRF token made when the page writes it, and its widgets' attributes written by plain string
formatting.

Flask-WTF reads WTForms' catalogue from disk for each request that builds a form; the
catalogues never change while the provider runs, so each locale's is read once.

Flask-WTF makes the form's CSRF token (signed, timed: itsdangerous) as the form is built; a form
posted and accepted is answered with a redirect that never writes it. The token is made when the
page writes the field instead, the same token (``generate_csrf`` keeps one per request); that a
form was given one is noted as it is built (``TOKEN_PROMISED``), for the layout's notice of the
session's time limit (``idp.web.rendering.session_time``).

WTForms writes each attribute of an input through ``Markup.format``, which runs Python's
``string.Formatter`` (72 µs an input, a third of the sign-in page's rendering). Each form's
widgets are WTForms' own, with its ``html_params`` (the extension point its widgets read the
attributes' writer from) replaced by one giving the same markup.
"""

from __future__ import annotations

import functools
from typing import Any

from babel import support
from flask import current_app, g
from flask_babel import LazyString, get_locale
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms.i18n import messages_path
from wtforms.widgets.core import clean_key, html_params


def html_attributes(**attributes: Any) -> Markup:
    """What WTForms' ``html_params`` gives: sorted by name, ``True`` as the bare name, ``False``
    left out, names and values escaped (quotes too)."""
    written = []
    for name, value in sorted(attributes.items()):
        if value is True:
            written.append(str(escape(clean_key(name))))
        elif value is not False:
            # A value already markup may hold a quote, which would end the attribute.
            text = str(escape(value)).replace('"', "&quot;")
            written.append(f'{escape(clean_key(name))}="{text}"')
    return Markup(" ".join(written))  # noqa: S704 - every name and value escaped above


# In ``g`` once a form of the request has been given the session's CSRF token, made or not yet.
TOKEN_PROMISED = "csrf_token_promised"  # noqa: S105 - a name in g, not a secret


class _TokenWhenWritten(FlaskForm.Meta.csrf_class):
    """Flask-WTF's CSRF for forms, the token made as the page writes it."""

    def generate_csrf_token(self, csrf_token_field):
        setattr(g, TOKEN_PROMISED, True)
        return LazyString(super().generate_csrf_token, csrf_token_field)


class Form(FlaskForm):
    class Meta(FlaskForm.Meta):
        csrf_class = _TokenWhenWritten

        def get_translations(self, form):
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _translations(str(get_locale()))

        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            field.widget = _plainly_written(field.widget)
            return field


@functools.lru_cache(maxsize=16)
def _translations(locale: str) -> support.NullTranslations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


@functools.cache
def _plainly_written(widget: Any) -> Any:
    """The same widget (its settings copied), writing its attributes with ``html_attributes``.
    Fields share their class's widget, so this makes one per widget the forms declare."""
    kind: type = type(widget)
    if getattr(kind, "html_params", None) is not html_params:
        return widget  # a widget without attributes, or with its own writer
    plain: Any = object.__new__(_plain_kind(kind))
    plain.__dict__.update(vars(widget))
    return plain


@functools.cache
def _plain_kind(kind: type) -> type:
    return type(kind.__name__, (kind,), {"html_params": staticmethod(html_attributes),
                                         "__module__": __name__})

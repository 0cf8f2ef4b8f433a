"""The base of every form: Flask-WTF's, with WTForms' own messages translated once per process.

Flask-WTF reads WTForms' catalogue from disk for each request that builds a form; the
catalogues never change while the provider runs, so each locale's is read once.
"""

from __future__ import annotations

import functools

from babel import support
from flask import current_app
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path


class Form(FlaskForm):
    class Meta(FlaskForm.Meta):
        def get_translations(self, form):
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _translations(str(get_locale()))


@functools.lru_cache(maxsize=16)
def _translations(locale: str) -> support.NullTranslations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")

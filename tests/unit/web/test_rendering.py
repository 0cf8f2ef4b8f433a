"""What every page's context gets (idp.web.rendering.page_context)."""

from __future__ import annotations

import pytest
from flask import render_template_string

from idp.web.rendering import page_context

STRINGS = [
    '{{ _("Connexion") }}',
    '{{ _("Connexion à votre %(portal)s", portal="<b>espace</b>") }}',
    '{{ gettext("Identifiant ou mot de passe incorrect.") }}',
    '{{ _("100 %% des pages") }}',
    '{{ ngettext("%(num)s essai", "%(num)s essais", 3) }}',
    '{{ ngettext("%(num)s essai pour %(who)s", "%(num)s essais pour %(who)s", 1, who="<i>") }}',
    '{% trans who="<i>" %}Bonjour {{ who }}{% endtrans %}',
    '{% autoescape false %}{{ _("a < %(b)s", b="<b>") }}{% endautoescape %}',
]


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("source", STRINGS)
def test_a_pages_strings_read_as_flask_babels_own_would(app, source, lang):
    with app.test_request_context(f"/?lang={lang}"):
        assert page_context()["gettext"] is not app.jinja_env.globals["gettext"]
        # The environment alone: Flask-Babel's gettext; a page: the one of its context.
        expected = app.jinja_env.from_string(source).render()
        assert render_template_string(source) == expected


def test_a_page_in_english_is_translated(app):
    with app.test_request_context("/?lang=en"):
        assert render_template_string('{{ _("Connexion") }}') != "Connexion"

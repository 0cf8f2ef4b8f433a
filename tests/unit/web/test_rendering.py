"""The templates' gettext (idp.web.rendering.TEMPLATE_GETTEXT): a page's strings, its macros'
included, read as Flask-Babel's own would have them, the page's catalogue found once."""

from __future__ import annotations

import flask_babel
import pytest
from flask_babel import get_translations
from jinja2 import Environment

from idp.accounts.forms import LoginForm
from idp.web import rendering

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


def flask_babels(source: str) -> str:
    """``source`` rendered with the gettext Flask-Babel installs in an application's environment."""
    environment = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        lambda string: get_translations().ugettext(string),
        lambda singular, plural, n: get_translations().ungettext(singular, plural, n), newstyle=True)
    return environment.from_string(source).render()


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("source", STRINGS)
def test_a_pages_strings_read_as_flask_babels_own_would(app, source, lang):
    with app.test_request_context(f"/?lang={lang}"):
        assert app.jinja_env.globals["gettext"] is rendering.TEMPLATE_GETTEXT["gettext"]
        assert app.jinja_env.from_string(source).render() == flask_babels(source)


def test_a_page_and_its_macros_read_its_own_catalogue_found_once(app, monkeypatch):
    per_string = []  # what Flask-Babel's gettext asks at each string
    monkeypatch.setattr(flask_babel, "get_translations", lambda: per_string.append(1) or get_translations())
    with app.test_request_context("/malakoff/login?lang=en"):
        app.preprocess_request()
        page, _status = rendering.render("login.html", form=LoginForm(meta={"csrf": False}), interaction=None)
    # The macros' strings too (the support block's), in the page's language.
    assert "Need help? Contact our advisers" in page
    assert per_string == []


def test_a_page_in_english_is_translated(app):
    with app.test_request_context("/?lang=en"):
        assert app.jinja_env.from_string('{{ _("Connexion") }}').render() != "Connexion"

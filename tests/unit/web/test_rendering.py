"""The templates' gettext (idp.web.rendering.TEMPLATE_GETTEXT): a page's strings, its macros'
included, read as Flask-Babel's own would have them, the page's catalogue found once; the
templates a tenant does not have, looked for once (idp.web.rendering.Templates)."""

from __future__ import annotations

import flask_babel
import pytest
from flask import Flask
from flask_babel import get_translations
from jinja2 import DictLoader, Environment, TemplateNotFound

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


def test_a_page_the_tenant_has_no_version_of_is_looked_for_once(app, client, monkeypatch):
    client.get("/malakoff/login")
    looked_up = []
    loader = app.jinja_env.loader
    original = loader.get_source
    monkeypatch.setattr(loader, "get_source", lambda env, name: looked_up.append(name) or original(env, name))
    page = client.get("/malakoff/login")
    assert page.status_code == 200 and b'name="password"' in page.data
    assert looked_up == []


def templates(pages: dict[str, str], *, reload: bool) -> Flask:
    app = Flask(__name__)
    app.jinja_environment = rendering.Templates
    app.jinja_options = {"loader": DictLoader(pages)}
    app.config["TEMPLATES_AUTO_RELOAD"] = reload
    return app


@pytest.mark.parametrize("reload", [False, True])
def test_a_tenants_version_is_chosen_first(reload):
    app = templates({"base/p.html": "shared", "t/p.html": "the tenant's"}, reload=reload)
    assert app.jinja_env.select_template(["t/p.html", "base/p.html"]).render() == "the tenant's"
    assert app.jinja_env.get_or_select_template(["u/p.html", "base/p.html"]).render() == "shared"


def test_a_version_added_while_the_provider_runs_is_seen_only_where_templates_reload():
    pages = {"base/p.html": "shared"}
    steady, reloading = templates(pages, reload=False), templates(pages, reload=True)
    for app in (steady, reloading):
        assert app.jinja_env.select_template(["t/p.html", "base/p.html"]).render() == "shared"
    pages["t/p.html"] = "the tenant's"
    assert steady.jinja_env.select_template(["t/p.html", "base/p.html"]).render() == "shared"
    assert reloading.jinja_env.select_template(["t/p.html", "base/p.html"]).render() == "the tenant's"


def test_no_version_at_all_is_an_error_naming_the_shared_one():
    app = templates({}, reload=False)
    for _ in range(2):
        with pytest.raises(TemplateNotFound, match=r"base/q\.html"):
            app.jinja_env.select_template(["t/q.html", "base/q.html"])

"""WTForms' own messages, in the page's language, from catalogues read once per process."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup
from wtforms import SelectField
from wtforms.widgets.core import html_params

from idp.forms import Form, html_attributes


class Pick(Form):
    choice = SelectField(choices=["a"])


def test_wtforms_messages_follow_the_language_from_catalogues_read_once(app):
    catalogues = []
    for language, message in [("fr", "N'est pas un choix valide."), ("en", "Not a valid choice."),
                              ("fr", "N'est pas un choix valide.")]:
        with app.test_request_context("/malakoff/login", method="POST", data={"choice": "z"},
                                      headers={"Accept-Language": language}):
            form = Pick(meta={"csrf": False})
            assert not form.validate()
            assert form.errors == {"choice": [message]}
            catalogues.append(form.meta.get_translations(form))
    assert catalogues[0] is catalogues[2] and catalogues[0] is not catalogues[1]


# Names as templates and widgets pass them (class_, data_*, aria_*, aria-*), values of every kind.
_names = st.from_regex(r"(data_|aria_|aria-)?[a-z][a-z_-]{0,8}_?", fullmatch=True)
_values = st.one_of(st.booleans(), st.integers(), st.text(max_size=20), st.none(),
                    st.builds(Markup, st.sampled_from(["<b>", "a&amp;b", '"'])))


@given(st.dictionaries(_names, _values, max_size=8))
def test_attributes_are_written_as_wtforms_writes_them(attributes):
    assert html_attributes(**attributes) == html_params(**attributes)


def _forms(kind=Form):
    for form in kind.__subclasses__():
        yield form
        yield from _forms(form)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_field_of_every_form_renders_as_wtforms_renders_it(app, language):
    import idp.app  # noqa: F401, PLC0415 - every blueprint, hence every form, imported

    forms = [form for form in _forms() if form.__module__.startswith("idp.")]
    assert len(forms) > 20
    data = {"identifier": 'jeanne"<martin>', "email": "a&b@example.org", "code": "12 34"}
    plain = 0
    with app.test_request_context("/malakoff/login", method="POST", data=data,
                                  headers={"Accept-Language": language}):
        for kind in forms:
            form = kind(meta={"csrf": False})
            for name, unbound in form._unbound_fields:
                field = form[name]
                stock = unbound.kwargs.get("widget") or unbound.field_class.widget
                for extra in ({}, {"autocomplete": "username", "aria-describedby": "a b", "autofocus": True}):
                    assert field(**extra) == stock(field, **extra), (kind.__name__, name, extra)
                plain += type(field.widget) is not type(stock)
    assert plain > 50  # the forms' inputs use the plain writer

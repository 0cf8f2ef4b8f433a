"""WTForms' own messages, in the page's language, from catalogues read once per process."""

from __future__ import annotations

from wtforms import SelectField

from idp.forms import Form


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

"""Form shapes and CSRF for the passkey pages; no side effects."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from idp.forms import Form
from idp.passkeys.services import NAME_MAX_LENGTH


def _name_field():
    return StringField(_l("Nom de la clé d’accès"), validators=[
        DataRequired(_l("Donnez un nom à votre clé d’accès.")),
        Length(max=NAME_MAX_LENGTH,
               message=_l("Choisissez un nom plus court (%(max)d caractères au plus)."))])


class PasskeyPasswordForm(Form):
    current_password = PasswordField(_l("Mot de passe actuel"), validators=[
        DataRequired(_l("Saisissez votre mot de passe actuel.")), Length(max=256)])
    submit = SubmitField(_l("Continuer"))


class NewPasskeyForm(Form):
    name = _name_field()
    # The browser's credential (JSON), checked by the service: its faults are the page's error.
    credential = HiddenField()
    submit = SubmitField(_l("Créer ma clé d’accès"))


class RenamePasskeyForm(Form):
    name = _name_field()
    submit = SubmitField(_l("Renommer"))


class PasskeySignInForm(Form):
    interaction = HiddenField()
    credential = HiddenField()


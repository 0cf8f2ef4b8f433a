"""Form shapes and CSRF; no side effects."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    interaction = HiddenField()
    identifier = StringField(validators=[DataRequired(_l("Saisissez votre identifiant.")),
                                         Length(max=254)])
    password = PasswordField(
        _l("Mot de passe"),
        validators=[DataRequired(_l("Saisissez votre mot de passe.")), Length(max=256)],
    )
    submit = SubmitField(_l("Me connecter"))


class ConsentForm(FlaskForm):
    interaction = HiddenField()
    allow = SubmitField(_l("Autoriser"))
    deny = SubmitField(_l("Refuser"))


class ConfirmForm(FlaskForm):
    confirm = SubmitField(_l("Me déconnecter"))
    cancel = SubmitField(_l("Annuler"))

"""Second-factor forms: choose a channel, enter the code."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, Length

from idp.forms import Form
from idp.mfa.services import CHANNELS


class ChannelForm(Form):
    # Rendered as radio buttons by the template, which knows the member's destinations.
    channel = StringField(
        _l("Où souhaitez-vous recevoir votre code ?"),
        validators=[DataRequired(_l("Choisissez où recevoir votre code.")),
                    AnyOf(CHANNELS, message=_l("Choisissez où recevoir votre code."))],
    )
    submit = SubmitField(_l("Recevoir mon code"))


class CodeForm(Form):
    code = StringField(
        _l("Code à 6 chiffres"),
        validators=[DataRequired(_l("Saisissez le code reçu.")), Length(max=20)],
    )
    remember = BooleanField(_l("Se souvenir de moi sur cet appareil pendant 90 jours"))
    submit = SubmitField(_l("Valider"))


class ResendForm(Form):
    channel = HiddenField(validators=[DataRequired(), AnyOf(CHANNELS)])
    submit = SubmitField(_l("Renvoyer un code"))

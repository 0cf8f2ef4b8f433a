"""Second-factor forms: choose a channel, enter the code."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from wtforms import BooleanField, HiddenField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, ValidationError

from idp.forms import Form
from idp.mfa.otp import normalize_code
from idp.mfa.services import CHANNELS, OtpInvalid, OtpReplaced


def six_digits(_form, field) -> None:
    """A code's field: what cannot be a code ("12ab", five digits) is told on the field, and
    never checked, so that it spends none of the code's tries."""
    if field.data and normalize_code(field.data) is None:
        raise ValidationError(_l("Le code comporte 6 chiffres."))


def wrong_code(exc: OtpInvalid) -> str:
    """What a wrong code's field says: the tries the code has left; for the code a newer one
    replaced (``OtpReplaced``, a try spent all the same), where the newer one went."""
    if not isinstance(exc, OtpReplaced):
        return ngettext("Code incorrect. Il vous reste %(num)d essai.",
                        "Code incorrect. Il vous reste %(num)d essais.", exc.remaining)
    replaced = (_("Ce code a été remplacé par celui envoyé par SMS.") if exc.channel == "sms"
                else _("Ce code a été remplacé par celui envoyé par e-mail."))
    latest = _("Saisissez le dernier code reçu.")
    tries = ngettext("Il vous reste %(num)d essai.", "Il vous reste %(num)d essais.", exc.remaining)
    return f"{replaced} {latest} {tries}"


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
        _l("Code à 6 chiffres"),
        validators=[DataRequired(_l("Saisissez le code reçu.")), six_digits],
    )
    remember = BooleanField(_l("Se souvenir de moi sur cet appareil pendant 90 jours"))
    submit = SubmitField(_l("Valider"))


class ResendForm(Form):
    channel = HiddenField(validators=[DataRequired(), AnyOf(CHANNELS)])
    submit = SubmitField(_l("Renvoyer un code"))

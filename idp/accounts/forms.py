"""Form shapes and CSRF; no side effects."""

from __future__ import annotations

from datetime import date, datetime

import phonenumbers
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError


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


def parse_birth_date(raw: str) -> date | None:
    """JJ/MM/AAAA as printed on French documents (also AAAA-MM-JJ from date pickers)."""
    raw = (raw or "").strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            value = datetime.strptime(raw, pattern).date()
        except ValueError:
            continue
        if date(1900, 1, 1) <= value <= date.today():
            return value
    return None


def mobile_e164(raw: str, region: str = "FR") -> str | None:
    """A mobile number in E.164 (+33 by default), or None when it is not a valid mobile."""
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class BirthDate:
    def __call__(self, form, field):
        field.parsed = parse_birth_date(field.data)
        if field.parsed is None:
            raise ValidationError(_l("Saisissez votre date de naissance au format JJ/MM/AAAA."))


class Mobile:
    def __call__(self, form, field):
        field.e164 = mobile_e164(field.data)
        if field.e164 is None:
            raise ValidationError(
                _l("Saisissez un numéro de téléphone mobile valide, par exemple 06 12 34 56 78."))


EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class MalakoffRegistrationForm(FlaskForm):
    member_number = StringField(_l("Numéro d’adhérent"), validators=[
        DataRequired(_l("Saisissez votre numéro d’adhérent.")),
        Regexp(r"^\d{8}$", message=_l("Le numéro d’adhérent comporte 8 chiffres."))])
    first_name = StringField(_l("Prénom"), validators=[
        DataRequired(_l("Saisissez votre prénom.")), Length(max=100)])
    last_name = StringField(_l("Nom"), validators=[
        DataRequired(_l("Saisissez votre nom.")), Length(max=100)])
    birth_date = StringField(_l("Date de naissance"), validators=[
        DataRequired(_l("Saisissez votre date de naissance.")), BirthDate()])
    email = StringField(_l("Adresse e-mail"), validators=[
        DataRequired(_l("Saisissez votre adresse e-mail.")), Length(max=254),
        Regexp(EMAIL_RE, message=_l("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr."))])
    email_confirm = StringField(_l("Confirmation de l’adresse e-mail"), validators=[
        DataRequired(_l("Saisissez à nouveau votre adresse e-mail.")),
        EqualTo("email", message=_l("Les deux adresses emails ne sont pas identiques."))])
    mobile = StringField(_l("Téléphone mobile"), validators=[
        DataRequired(_l("Saisissez votre numéro de téléphone mobile.")), Mobile()])
    accept_terms = BooleanField(validators=[DataRequired(
        _l("Vous devez accepter les mentions légales et les conditions générales d’utilisation."))])
    submit = SubmitField(_l("Créer mon compte"))


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        DataRequired(_l("Choisissez un mot de passe.")), Length(max=256)])
    password_confirm = PasswordField(_l("Confirmation du mot de passe"), validators=[
        DataRequired(_l("Saisissez à nouveau votre mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])
    submit = SubmitField(_l("Activer mon compte"))


class ResendActivationForm(FlaskForm):
    email = StringField(_l("Adresse e-mail"), validators=[
        DataRequired(_l("Saisissez votre adresse e-mail.")), Length(max=254),
        Regexp(EMAIL_RE, message=_l("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr."))])
    submit = SubmitField(_l("Recevoir un nouveau lien"))

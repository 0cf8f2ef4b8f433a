"""Form shapes and CSRF; no side effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    ValidationError,
)

from idp.accounts.models import DEFAULT_PREFERENCES
from idp.forms import Form
from idp.identifiers import (
    InvalidIdentifier,
    is_email,
    parse_birth_date,
    parse_member_number,
    parse_mobile,
)
from idp.mfa.forms import six_digits
from idp.registry.departments import DEPARTMENTS
from idp.registry.nir import InvalidNir, nir_matches_birth_date, nir_matches_department, validate_nir


def member_number_digits(value: str | None) -> str | None:
    """A member number as its 8 digits, anything else as typed.

    Pages, rate limits and lookups then see one spelling of a number, whoever typed
    "2345 6789" and whoever "23456789".
    """
    if not isinstance(value, str):
        return value
    try:
        return parse_member_number(value)
    except InvalidIdentifier:
        return value


class LoginForm(Form):
    interaction = HiddenField()
    identifier = StringField(filters=[member_number_digits],
                             validators=[DataRequired(_l("Saisissez votre identifiant.")),
                                         Length(max=254)])
    password = PasswordField(
        _l("Mot de passe"),
        validators=[DataRequired(_l("Saisissez votre mot de passe.")), Length(max=256)],
    )
    submit = SubmitField(_l("Me connecter"))


class ConsentForm(Form):
    interaction = HiddenField()
    allow = SubmitField(_l("Autoriser"))
    deny = SubmitField(_l("Refuser"))


class ConfirmForm(Form):
    confirm = SubmitField(_l("Me déconnecter"))
    cancel = SubmitField(_l("Annuler"))


class _Reads:
    """Reads the field's text with an ``idp.identifiers`` parser into ``field.<attribute>``
    (None when it does not read), for the view. ``because``: the message of a refusal for
    some of the parser's reasons (``InvalidIdentifier.reason``), ``message`` for the others."""

    def __init__(self, parse: Callable[[str], object], attribute: str, message: str,
                 because: Mapping[str, str] | None = None):
        self.parse, self.attribute, self.message = parse, attribute, message
        self.because = because or {}

    def __call__(self, form, field):
        try:
            value = self.parse(field.data or "")
        except InvalidIdentifier as refused:
            value = None
            raise ValidationError(self.because.get(refused.reason, self.message)) from None
        finally:
            setattr(field, self.attribute, value)


class BirthDate(_Reads):
    def __init__(self):
        super().__init__(parse_birth_date, "parsed",
                         _l("Saisissez votre date de naissance au format JJ/MM/AAAA."), because={
                             "invalid": _l("Cette date n’existe pas : vérifiez le jour et le mois."),
                             "future": _l("Votre date de naissance ne peut pas être dans le futur."),
                             "too_old": _l("Vérifiez l’année de votre date de naissance."),
                         })


class Mobile(_Reads):
    def __init__(self):
        super().__init__(parse_mobile, "e164",
                         _l("Saisissez un numéro de téléphone mobile valide, par exemple 06 12 34 56 78."))


class EmailAddress:
    def __call__(self, form, field):
        if not is_email(field.data or ""):
            raise ValidationError(
                _l("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr."))


class MemberNumber:
    """Leaves the number as its 8 digits in ``field.data``, for the view's lookups."""

    def __call__(self, form, field):
        try:
            field.data = parse_member_number(field.data or "")
        except InvalidIdentifier:
            raise ValidationError(_l("Le numéro d’adhérent comporte 8 chiffres.")) from None


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ConfirmedEmailForm(Form):
    """An address typed twice: a typo here would lock the member out of their own mail."""

    # Phones and copy-paste add spaces around addresses; they are never part of one.
    email = StringField(_l("Adresse e-mail"), filters=[_strip], validators=[
        DataRequired(_l("Saisissez votre adresse e-mail.")), Length(max=254),
        EmailAddress()])
    email_confirm = StringField(_l("Confirmation de l’adresse e-mail"), filters=[_strip], validators=[
        DataRequired(_l("Saisissez à nouveau votre adresse e-mail.")),
        EqualTo("email", message=_l("Les deux adresses emails ne sont pas identiques."))])


class ContactForm(ConfirmedEmailForm):
    mobile = StringField(_l("Téléphone mobile"), validators=[
        DataRequired(_l("Saisissez votre numéro de téléphone mobile.")), Mobile()])
    submit = SubmitField(_l("Recevoir le code par SMS"))


class MalakoffRegistrationForm(ContactForm):
    """SPEC §3.1: one page; the contact fields come from ContactForm."""

    member_number = StringField(_l("Numéro d’adhérent"), validators=[
        DataRequired(_l("Saisissez votre numéro d’adhérent.")), MemberNumber()])
    first_name = StringField(_l("Prénom"), validators=[
        DataRequired(_l("Saisissez votre prénom.")), Length(max=100)])
    last_name = StringField(_l("Nom"), validators=[
        DataRequired(_l("Saisissez votre nom.")), Length(max=100)])
    birth_date = StringField(_l("Date de naissance"), validators=[
        DataRequired(_l("Saisissez votre date de naissance.")), BirthDate()])
    accept_terms = BooleanField(validators=[DataRequired(
        _l("Vous devez accepter les mentions légales et les conditions générales d’utilisation."))])
    submit = SubmitField(_l("Créer mon compte"))


class NewPasswordForm(Form):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        DataRequired(_l("Choisissez un mot de passe.")), Length(max=256)])
    password_confirm = PasswordField(_l("Confirmation du mot de passe"), validators=[
        DataRequired(_l("Saisissez à nouveau votre mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])
    submit = SubmitField(_l("Activer mon compte"))


class ResendActivationForm(Form):
    email = StringField(_l("Adresse e-mail"), validators=[
        DataRequired(_l("Saisissez votre adresse e-mail.")), Length(max=254),
        EmailAddress()])
    submit = SubmitField(_l("Recevoir un nouveau lien"))


# The entries whose label is words, not a place's name: translated.
_WORDED_DEPARTMENTS = {"96": _l("96 — Code historique"), "99": _l("99 — Né(e) à l’étranger")}


def _department_choices() -> list[SelectChoice]:
    choices = [SelectChoice("", _l("Choisissez…"))]
    for code, name in DEPARTMENTS:
        # A lazy text stays lazy (translated when the page is made): looked up, never tested.
        choices.append(SelectChoice(code, _WORDED_DEPARTMENTS.get(code, f"{code} — {name}")))
    return choices


NIR_MESSAGES = {
    "format": _l("Le numéro de sécurité sociale comporte 15 caractères (13 chiffres et une "
                 "clé de 2 chiffres ; 2A ou 2B pour la Corse)."),
    "sex": _l("Le numéro de sécurité sociale doit commencer par 1 ou 2."),
    "month": _l("Le mois de naissance indiqué dans le numéro n’est pas valide."),
    "department": _l("Le département de naissance indiqué dans le numéro n’est pas valide."),
    "key": _l("La clé du numéro de sécurité sociale (les 2 derniers chiffres) ne correspond "
              "pas : vérifiez votre saisie."),
}


class Nir:
    """A structurally valid NIR with a correct key (SPEC §10); the reason says what is wrong."""

    def __call__(self, form, field):
        try:
            field.parsed = validate_nir(field.data or "")
        except InvalidNir as exc:
            raise ValidationError(NIR_MESSAGES[exc.reason]) from None


class MielIdentityForm(Form):
    nir = StringField(_l("Numéro de sécurité sociale"), validators=[
        DataRequired(_l("Saisissez votre numéro de sécurité sociale.")), Length(max=30), Nir()])
    birth_date = StringField(_l("Date de naissance"), validators=[
        DataRequired(_l("Saisissez votre date de naissance.")), BirthDate()])
    birth_department = SelectField(
        _l("Département de naissance"), choices=_department_choices(),
        validators=[DataRequired(_l("Choisissez votre département de naissance."))])
    last_name = StringField(_l("Nom"), validators=[
        DataRequired(_l("Saisissez votre nom.")), Length(max=100)])
    first_name = StringField(_l("Prénom"), validators=[
        DataRequired(_l("Saisissez votre prénom.")), Length(max=100)])
    submit = SubmitField(_l("Continuer"))

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        nir = self.nir.parsed
        if not nir_matches_department(nir, self.birth_department.data):
            self.birth_department.errors = [_l(
                "Le département de naissance ne correspond pas à votre numéro de sécurité sociale.")]
            return False
        if not nir_matches_birth_date(nir, self.birth_date.parsed):
            self.birth_date.errors = [_l(
                "La date de naissance ne correspond pas à votre numéro de sécurité sociale "
                "(année et mois).")]
            return False
        return True


class ReceivedCodeForm(Form):
    code = StringField(_l("Code à 6 chiffres"), validators=[
        DataRequired(_l("Saisissez le code reçu.")), six_digits])
    submit = SubmitField(_l("Valider"))


class NewPasswordWithBirthDateForm(NewPasswordForm):
    """Miel's set-password page asks the birth date again (SPEC §3.2)."""

    birth_date = StringField(_l("Date de naissance"), validators=[
        DataRequired(_l("Saisissez votre date de naissance.")), BirthDate()])


_DELIVERIES = [SelectChoice("email", _l("Par e-mail")), SelectChoice("post", _l("Par la poste"))]


class PreferencesForm(Form):
    """Communication preferences (SPEC §3.2): optional, each field starts from the member's
    current choice (the view passes it) or its default (``DEFAULT_PREFERENCES``)."""

    statements = RadioField(_l("Vos relevés de remboursement"),
                            default=DEFAULT_PREFERENCES["statements"], choices=_DELIVERIES)
    letters = RadioField(_l("Vos autres documents (attestations, informations sur votre contrat)"),
                         default=DEFAULT_PREFERENCES["letters"], choices=_DELIVERIES)
    # Its label names the tenant's brand (the pages write it).
    marketing = BooleanField(default=DEFAULT_PREFERENCES["marketing"])
    submit = SubmitField(_l("Enregistrer mes préférences"))

    @property
    def preferences(self) -> dict[str, object]:
        return {"statements": self.statements.data, "letters": self.letters.data,
                "marketing": bool(self.marketing.data)}


class TermsForm(PreferencesForm):
    """The current terms, and where the tenant asks them the preferences; a tenant that does
    not ask them removes those fields."""

    accept_terms = BooleanField(validators=[DataRequired(
        _l("Vous devez accepter les mentions légales et les conditions générales d’utilisation."))])
    submit = SubmitField(_l("Continuer"))


class ForgotPasswordForm(Form):
    identifier = StringField(filters=[member_number_digits],
                             validators=[DataRequired(_l("Saisissez votre identifiant.")),
                                         Length(max=254)])
    submit = SubmitField(_l("Recevoir un lien"))


class ReauthenticationForm(Form):
    """Sensitive changes ask the password again: an open session alone is not enough."""

    current_password = PasswordField(_l("Mot de passe actuel"), validators=[
        DataRequired(_l("Saisissez votre mot de passe actuel.")), Length(max=256)])


class ChangePasswordForm(NewPasswordForm, ReauthenticationForm):
    pass


class DeleteAccountForm(ReauthenticationForm):
    confirm = BooleanField(validators=[DataRequired(
        _l("Cochez la case pour confirmer la suppression."))])
    submit = SubmitField(_l("Supprimer mon compte"))


class ChangeMobileForm(ReauthenticationForm):
    mobile = StringField(_l("Nouveau numéro de mobile"), validators=[
        DataRequired(_l("Saisissez votre numéro de téléphone mobile.")), Mobile()])
    submit = SubmitField(_l("Recevoir le code par SMS"))


class ChangeEmailForm(ReauthenticationForm, ConfirmedEmailForm):
    submit = SubmitField(_l("Recevoir le code par e-mail"))


class UpdateIdentifierForm(Form):
    """SPEC §7: the email that becomes the login identifier (prefilled with the one on file)."""

    email = ConfirmedEmailForm.email
    submit = SubmitField(_l("Continuer"))


class MemberNumberForm(Form):
    member_number = StringField(_l("Numéro d’adhérent"), validators=[
        DataRequired(_l("Saisissez votre numéro d’adhérent.")), MemberNumber()])
    submit = SubmitField(_l("Recevoir mon identifiant"))


class LetterCodeForm(MemberNumberForm):
    """The activation code received by post, and the member number printed beside it."""

    code = StringField(_l("Code reçu par courrier"), validators=[
        DataRequired(_l("Saisissez le code reçu par courrier.")), Length(max=20)])
    submit = SubmitField(_l("Valider"))

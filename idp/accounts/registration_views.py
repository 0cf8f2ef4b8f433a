"""Registration pages: create my account, activation link, define my password (SPEC §3)."""

from __future__ import annotations

from flask import abort, redirect, request, session, url_for
from flask_babel import gettext as _

from idp import ratelimit
from idp.accounts.forms import MalakoffRegistrationForm, NewPasswordForm, ResendActivationForm
from idp.accounts.passwords import PersonalData, password_errors
from idp.accounts.registration import (
    ACTIVATION_SENT,
    BENEFICIARY,
    IN_REVIEW,
    NO_MATCH,
    TERMINATED,
    ActivationLinkInvalid,
    Applicant,
    Registrations,
)
from idp.channels.services import messages_service
from idp.extensions import current_tenant, db, services
from idp.ratelimit import RateLimiter, TooManyAttempts
from idp.registry.matching import match_by_member_number
from idp.web import render, tenant_blueprint

bp = tenant_blueprint("registration", __name__)


def registrations() -> Registrations:
    return Registrations(db(), current_tenant(), messages_service(), services().settings.secret_key)


def _send_all(messages) -> None:
    """After the commit: try each message now; the queue retries what could not go."""
    outgoing = messages_service()
    for message in messages:
        outgoing.send_now(message)


def _outcome_message(status: str) -> str | None:
    return {
        NO_MATCH: _("Les informations saisies ne correspondent pas à celles de votre contrat. "
                    "Vérifiez-les (elles figurent sur votre carte de tiers payant) et réessayez."),
        BENEFICIARY: _("Vous êtes couvert en tant que bénéficiaire : c’est le compte du membre "
                       "principal de votre contrat qui vous donne accès à vos informations."),
        TERMINATED: _("Votre contrat n’est plus actif : vous ne pouvez pas créer de compte. "
                      "Contactez-nous pour toute question."),
    }.get(status)


@bp.route("/register", methods=["GET", "POST"])
def register():
    tenant = current_tenant()
    if not tenant.logs_in_with_email:
        # Miel members register by NIR, in three steps: not this page.
        abort(404)
    form = MalakoffRegistrationForm()
    error = None
    status = 200
    if form.validate_on_submit():
        limiter = RateLimiter(services().store, ratelimit.REGISTRATION_PER_IP)
        ip = request.remote_addr or "?"
        try:
            limiter.test(ip)
        except TooManyAttempts:
            error = _("Trop de tentatives. Veuillez réessayer dans une heure.")
            return render("register.html", status=429, form=form, error=error)
        limiter.hit(ip)
        match = match_by_member_number(db(), tenant, form.member_number.data,
                                       form.first_name.data, form.last_name.data,
                                       form.birth_date.parsed)
        applicant = Applicant(
            first_name=form.first_name.data.strip(), last_name=form.last_name.data.strip(),
            birth_date=form.birth_date.parsed, email=form.email.data, mobile=form.mobile.e164,
            terms_version=tenant.terms_version, ip=ip,
        )
        outcome = registrations().register(applicant, match)
        db().commit()
        _send_all(outcome.messages)
        if outcome.status in (ACTIVATION_SENT, IN_REVIEW):
            session["registered"] = outcome.status
            return redirect(url_for("registration.registered"), 303)
        error = _outcome_message(outcome.status)
        status = 400
    elif form.is_submitted():
        status = 400
    return render("register.html", status=status, form=form, error=error)


@bp.get("/register/sent")
def registered():
    # The same page for a new account and for one that already existed (no enumeration).
    return render("registered.html", in_review=session.get("registered") == IN_REVIEW)


@bp.route("/activate/<token>", methods=["GET", "POST"])
def activate(token: str):
    tenant = current_tenant()
    service = registrations()
    try:
        account = service.account_for_link(token)
    except ActivationLinkInvalid:
        return redirect(url_for("registration.link_expired"), 303)
    form = NewPasswordForm()
    failed: list[str] = []
    if form.validate_on_submit():
        personal = PersonalData(first_name=account.given_name, last_name=account.family_name,
                                birth_date=account.birthdate, member_number=account.member_number,
                                email=account.email)
        failed = password_errors(form.password.data, tenant.password, personal)
        if not failed:
            messages = service.activate(account, form.password.data, services().hasher)
            db().commit()
            _send_all(messages)
            return redirect(url_for("registration.welcome"), 303)
        form.password.errors = [_("Ce mot de passe ne respecte pas toutes les règles ci-dessous.")]
    status = 400 if form.is_submitted() else 200
    return render("activate.html", status=status, form=form, failed=failed, token=token)


@bp.route("/activate/expired", methods=["GET", "POST"])
def link_expired():
    form = ResendActivationForm()
    sent = False
    if form.validate_on_submit():
        messages = registrations().resend_activation(form.email.data)
        db().commit()
        _send_all(messages)
        sent = True  # the same answer whether or not a pending account has this address
    return render("activation_expired.html", form=form, sent=sent)


@bp.get("/welcome")
def welcome():
    return render("welcome.html")

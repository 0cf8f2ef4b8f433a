"""Registration pages: create my account, activation link, define my password (SPEC §3)."""

from __future__ import annotations

import contextlib
from datetime import date

from flask import redirect, request, session, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from idp import ratelimit
from idp.accounts.codes import code_accepted
from idp.accounts.forms import (
    ContactForm,
    LetterCodeForm,
    MalakoffRegistrationForm,
    MielIdentityForm,
    NewPasswordForm,
    NewPasswordWithBirthDateForm,
    ReceivedCodeForm,
    ResendActivationForm,
)
from idp.accounts.passwords import PersonalData, password_errors
from idp.accounts.registration import (
    ACTIVATION_SENT,
    BENEFICIARY,
    NO_MATCH,
    TERMINATED,
    ActivationLinkInvalid,
    ActivationLinkUsed,
    Applicant,
    LetterCodeRefused,
    LetterCodeUsed,
    Registrations,
)
from idp.extensions import current_tenant, db, find_service, services
from idp.mfa.services import Challenge, ResendTooSoon
from idp.ratelimit import RateLimiter
from idp.records import record
from idp.registry.matching import MATCH, NEAR_MISS, IdentityChecks, MatchResult
from idp.registry.models import Member
from idp.signin.services import CodeSender
from idp.tenancy import Tenant
from idp.web.errors import resend_wait
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("registration", __name__)


def _outcome_message(status: str) -> str:
    """What the page says of a registration that goes no further; every refusal has its words."""
    return {
        NO_MATCH: _("Les informations saisies ne correspondent pas à celles de votre contrat. "
                    "Vérifiez-les (elles figurent sur votre carte de tiers payant) et réessayez."),
        BENEFICIARY: _("Votre contrat vous couvre en tant que bénéficiaire : c’est le compte du membre "
                       "principal de votre contrat qui vous donne accès à vos informations."),
        TERMINATED: _("Votre contrat n’est plus actif : vous ne pouvez pas créer de compte. "
                      "Pour toute question, contactez nos conseillers : leurs coordonnées "
                      "sont en bas de cette page."),
    }[status]


def _sms_reaches(tenant: Tenant, form: ContactForm) -> bool:
    """Whether the tenant sends SMS to the form's mobile; if not, the field says where it does.

    The mobile receives the codes (here, and at every sign-in by SMS): a number that
    cannot receive them is refused before anything is recorded or sent.
    """
    if tenant.sms.allows(form.mobile.e164):
        return True
    names = get_locale().territories if get_locale() else {}
    countries = ", ".join(dict.fromkeys(names.get(code, code) for code in tenant.sms.countries))
    form.mobile.errors = [_(
        "Nous ne pouvons pas envoyer de SMS vers ce numéro. Saisissez un numéro de mobile de "
        "l’un de ces pays et territoires : %(countries)s.", countries=countries)]
    return False


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Malakoff, step 1: identity and contacts on one page; Miel: the identity step."""
    tenant = current_tenant()
    if not tenant.logs_in_with_email:
        return _nir_identity()
    state = session.get(REGISTRATION_STATE)
    # Back from the code step: what was typed is there again, but the acceptance of the terms.
    form = MalakoffRegistrationForm(data=state.get("typed") if state and request.method == "GET" else None)
    error = None
    status = 200
    if form.validate_on_submit() and _sms_reaches(tenant, form):
        ip = request.remote_addr or "?"
        _count_registration_attempt(ip)
        match = _identity_checks().by_member_number(
            form.member_number.data, form.first_name.data, form.last_name.data,
            form.birth_date.parsed, ip=ip)
        if match.member is not None and match.outcome in (MATCH, NEAR_MISS):
            state = _identified(match.member, match, form)
            state["typed"] = {"member_number": form.member_number.data,
                              "first_name": form.first_name.data, "last_name": form.last_name.data,
                              "birth_date": form.birth_date.data, **_typed_contacts(form)}
            if _send_code(tenant, state, form):
                return redirect(url_for("registration.code"), 303)
            status = 400
        else:
            error, status = _refusal(form, match), 400
    elif form.is_submitted():
        status = 400
    return render("register.html", status=status, form=form, error=error, step=1,
                  steps=_steps(tenant))


def _identity_checks() -> IdentityChecks:
    return IdentityChecks(db(), services().store, current_tenant())


def _count_registration_attempt(ip: str) -> None:
    """Identity checks per address (SPEC §9); TooManyAttempts past the limit."""
    limiter = RateLimiter(services().store, ratelimit.REGISTRATION_PER_IP)
    limiter.consume(ip)


# -- the steps' state: who was identified, the contacts typed, the SMS code's challenge ----------

REGISTRATION_STATE = "registration"


def _typed_contacts(form: ContactForm) -> dict:
    """The contacts as typed, to fill the form again when the member comes back to it."""
    return {"email": form.email.data, "email_confirm": form.email_confirm.data,
            "mobile": form.mobile.data}


def _identified(member: Member, match: MatchResult, form) -> dict:
    """A fresh state for an identity the registry knows (a match or a near miss); the contacts
    typed at a later step are kept for the form, not as contacts (they are proven again)."""
    previous = session.get(REGISTRATION_STATE) or {}
    state = {"contacts_typed": previous.get("contacts_typed"),
        "member_id": member.id, "outcome": match.outcome,
        "differences": match.differences, "first_name": form.first_name.data.strip(),
        "last_name": form.last_name.data.strip(),
        "birth_date": form.birth_date.parsed.isoformat(), "challenge": None,
    }
    session[REGISTRATION_STATE] = state
    return state


def _refusal(form, match: MatchResult) -> str:
    """A registration that goes no further: recorded by the service, said on the page."""
    applicant = Applicant(
        first_name=form.first_name.data.strip(), last_name=form.last_name.data.strip(),
        birth_date=form.birth_date.parsed, email="", mobile=None, terms_version=None,
        ip=request.remote_addr)
    return _outcome_message(find_service(Registrations).register(applicant, match).status)


def _send_code(tenant: Tenant, state: dict, form: ContactForm) -> bool:
    """The SMS code that proves the mobile typed; the contacts wait in the state for it.
    Within the cooldown of the code sent a moment ago to the same mobile, nothing is sent and the
    mobile's field says when a new one may be; False then. A mobile corrected since gets its
    code at once."""
    subject = f"registration:{state['member_id']}"
    try:
        sent = find_service(CodeSender).send(
            tenant, challenge_subject=subject, limit_subject=subject, channel="sms",
            recipient=form.mobile.e164, template="registration_code", ip=request.remote_addr or "?",
            previous=Challenge(**state["challenge"]) if state.get("challenge") else None,
            new_recipient=state.get("mobile") not in (None, form.mobile.e164),
            replaces=state.get("code_message"))
    except ResendTooSoon as exc:
        form.mobile.errors = [resend_wait(exc.retry_after)]
        return False
    state.update(challenge=record(sent.challenge), replaced=state.get("challenge"),
                 code_message=sent.message_id,
                 email=form.email.data.strip(), mobile=form.mobile.e164)
    session[REGISTRATION_STATE] = state
    return True


def _steps(tenant: Tenant) -> list[str]:
    """The steps' names, for the indicator at the top of each step."""
    if tenant.logs_in_with_email:
        return [_("Vos informations"), _("Code SMS")]
    return [_("Identité"), _("Coordonnées"), _("Code SMS")]


# -- Miel: identity with the NIR, then the contacts -----------------------------------------------


def _nir_identity():
    """Step 1: NIR, birth date, birth department and names, checked against the registry.

    Back from step 2, the form shows again what was typed."""
    state = _state()
    typed = state.get("typed") if state and request.method == "GET" else None
    form = MielIdentityForm(data=typed)
    error, status = None, 200
    if form.validate_on_submit():
        ip = request.remote_addr or "?"
        _count_registration_attempt(ip)
        match = _identity_checks().by_nir(form.nir.data, form.first_name.data,
                                          form.last_name.data, form.birth_date.parsed, ip=ip)
        if match.member is not None and match.outcome in (MATCH, NEAR_MISS):
            state = _identified(match.member, match, form)
            state["typed"] = {"nir": form.nir.data, "birth_date": form.birth_date.data,
                              "birth_department": form.birth_department.data,
                              "last_name": form.last_name.data, "first_name": form.first_name.data}
            session[REGISTRATION_STATE] = state
            return redirect(url_for("registration.nir_contact"), 303)
        # The contact comes at step 2: a refusal is decided (and recorded) without it.
        error, status = _refusal(form, match), 400
    elif form.is_submitted():
        status = 400
    return render("register_nir.html", status=status, form=form, error=error, step=1,
                  steps=_steps(current_tenant()))


def _state():
    return session.get(REGISTRATION_STATE)


@bp.route("/register/contact", methods=["GET", "POST"])
def nir_contact():
    """Miel, step 2: email and mobile; a code is sent to the mobile. "Revenir à l’étape
    précédente" submits the form too, so that what was typed is there on the way forward."""
    tenant = current_tenant()
    state = _state()
    if state is None or tenant.logs_in_with_email:
        return redirect(url_for("registration.register"), 303)
    form = ContactForm(data=state.get("contacts_typed") if request.method == "GET" else None)
    status = 200
    if form.is_submitted():
        state["contacts_typed"] = _typed_contacts(form)
        session[REGISTRATION_STATE] = state
        if request.form.get("back"):
            return redirect(url_for("registration.register"), 303)
    if form.validate_on_submit() and _sms_reaches(tenant, form) and _send_code(tenant, state, form):
        return redirect(url_for("registration.code"), 303)
    if form.is_submitted():
        status = 400
    return render("register_contact.html", status=status, form=form, step=2, steps=_steps(tenant))


@bp.route("/register/code", methods=["GET", "POST"])
def code():
    """Last step, both tenants: the SMS code proves the mobile; then the registration is
    decided (activation email, letter, or review)."""
    tenant = current_tenant()
    state = _state()
    if state is None or not state.get("challenge"):
        return redirect(url_for("registration.register"), 303)
    form = ReceivedCodeForm()
    expired = _("Ce code n’est plus valable. Revenez à l’étape précédente pour en recevoir un nouveau.")
    if form.validate_on_submit() and code_accepted(tenant, state, form.code, expired):
        member = db().get(Member, state["member_id"])
        applicant = Applicant(
            first_name=state["first_name"], last_name=state["last_name"],
            birth_date=date.fromisoformat(state["birth_date"]), email=state["email"],
            # Miel members accept the terms at their first sign-in (SPEC §3.2).
            mobile=state["mobile"],
            terms_version=tenant.terms_version if tenant.logs_in_with_email else None,
            ip=request.remote_addr, mobile_verified=True,
        )
        match = MatchResult(state["outcome"], member, state["differences"])
        outcome = find_service(Registrations).register(applicant, match)
        session.pop(REGISTRATION_STATE, None)
        session["registered"] = outcome.status
        return redirect(url_for("registration.registered"), 303)
    status = 400 if form.is_submitted() else 200
    back = "registration.register" if tenant.logs_in_with_email else "registration.nir_contact"
    steps = _steps(tenant)
    return render("register_code.html", status=status, form=form, step=len(steps), steps=steps,
                  back=url_for(back))


@bp.get("/register/sent")
def registered():
    # The same page for a new account and for one that already existed (no enumeration).
    return render("registered.html", outcome=session.get("registered"),
                  days=current_tenant().registration.letter_code_days)


@bp.route("/register/letter", methods=["GET", "POST"])
def letter():
    """The code received by post, with the member number printed beside it on the letter."""
    form = LetterCodeForm()
    status = 200
    if form.validate_on_submit():
        RateLimiter(services().store, ratelimit.LETTER_CODE_PER_IP).consume(request.remote_addr or "?")
        try:
            # LetterCodeUsed: another use of the code came first (a second tap on the button),
            # and its activation email is on its way, as the page says to both.
            with contextlib.suppress(LetterCodeUsed):
                find_service(Registrations).accept_letter_code(form.member_number.data, form.code.data)
        except LetterCodeRefused as refused:
            form.code.errors = [_letter_code_refused(refused.tries_left)]
        else:
            session["registered"] = ACTIVATION_SENT
            return redirect(url_for("registration.registered"), 303)
    if form.is_submitted():
        status = 400
    return render("register_letter.html", status=status, form=form)


def _letter_code_refused(tries_left: int | None) -> str:
    """What a refused code says: how many tries are left when there is a count to tell."""
    wrong = _("Ce code ne correspond pas à ce numéro d’adhérent, ou n’est plus valable.")
    if not tries_left:
        return " ".join((wrong, _("Si vous avez utilisé tous vos essais, ou si le courrier a plus "
                                  "de %(days)s jours, recommencez votre inscription pour en "
                                  "recevoir un nouveau.",
                                  days=current_tenant().registration.letter_code_days)))
    return " ".join((wrong, ngettext("Il vous reste %(num)d essai.", "Il vous reste %(num)d essais.",
                                     tries_left)))


@bp.route("/activate/<token>", methods=["GET", "POST"])
def activate(token: str):
    tenant = current_tenant()
    service = find_service(Registrations)
    try:
        account = service.account_for_link(token)
    except ActivationLinkUsed:
        return _link_used()
    except ActivationLinkInvalid:
        return redirect(url_for("registration.link_expired"), 303)
    asks_birth_date = not tenant.logs_in_with_email
    form = NewPasswordWithBirthDateForm() if asks_birth_date else NewPasswordForm()
    failed: list[str] = []
    tries = RateLimiter(services().store, ratelimit.ACTIVATION_BIRTH_DATE_TRIES)
    if asks_birth_date and not tries.remaining(token):
        return _tries_exhausted()
    valid = form.validate_on_submit()
    if valid and asks_birth_date:
        valid = _birth_date_agrees(tries, token, form, account.birthdate)
        if not valid and not tries.remaining(token):
            return _tries_exhausted()
    if valid:
        personal = PersonalData.of(account)
        failed = password_errors(form.password.data, tenant.password, personal)
        if not failed:
            try:
                service.activate(account, form.password.data, services().hasher)
            except ActivationLinkUsed:  # another use of the link came first
                return _link_used()
            return redirect(url_for("registration.welcome"), 303)
        form.password.errors = [_("Ce mot de passe ne respecte pas toutes les règles ci-dessous.")]
    status = 400 if form.is_submitted() else 200
    return render("activate.html", status=status, form=form, failed=failed, token=token)


def _birth_date_agrees(tries: RateLimiter, token: str, form, on_file: date | None) -> bool:
    """The birth date asked on the link, ``ACTIVATION_BIRTH_DATE_TRIES`` times at most.

    A link in the wrong mailbox must not become a way to find a member's birth date:
    each date is counted before it is compared (parallel posts cannot pass the count),
    and the right one gives its try back.
    """
    try:
        tries.consume(token)
    except ratelimit.TooManyAttempts:
        return False
    if form.birth_date.parsed == on_file:
        tries.refund(token)
        return True
    left = tries.remaining(token)
    form.birth_date.errors = [" ".join((
        _("Cette date de naissance ne correspond pas à votre dossier."),
        ngettext("Il vous reste %(num)d essai.", "Il vous reste %(num)d essais.", left)))]
    return False


def _tries_exhausted():
    session[TRIES_EXHAUSTED] = True
    return redirect(url_for("registration.link_expired"), 303)


LINK_USED = "activation_link_used"
TRIES_EXHAUSTED = "activation_tries_exhausted"


def _link_used():
    """The link did its work: its page says so, and leads to sign-in rather than a new link."""
    session[LINK_USED] = True
    return redirect(url_for("registration.link_expired"), 303)


@bp.route("/activate/expired", methods=["GET", "POST"])
def link_expired():
    form = ResendActivationForm()
    sent = False
    if request.method == "GET" and session.pop(LINK_USED, False):
        return render("activation_expired.html", form=form, sent=False, used=True)
    # The page says how many dates the link took before it stopped opening.
    exhausted = (request.method == "GET" and session.pop(TRIES_EXHAUSTED, False)
                 and ratelimit.ACTIVATION_BIRTH_DATE_TRIES.limit)
    if form.validate_on_submit():
        # Past the address's limit nothing more is sent; the page says the same either way,
        # as it does whether or not a pending account has this address.
        limiter = RateLimiter(services().store, ratelimit.ACTIVATION_RESEND_PER_IP)
        if limiter.allow(request.remote_addr or "?"):
            find_service(Registrations).resend_activation(form.email.data)
        sent = True
    return render("activation_expired.html", form=form, sent=sent, exhausted=exhausted)


@bp.get("/welcome")
def welcome():
    return render("welcome.html")

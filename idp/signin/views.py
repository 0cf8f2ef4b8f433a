"""The sign-in pages: password, where the code goes, the code, first-sign-in terms, more time.

Views translate HTTP only: they bind the form, call ``SignIn`` and the interaction API, and
render or redirect. Refusals (too many attempts, a sign-in gone) are raised and answered by
the error boundary (``idp.web.errors``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import SimpleNamespace

from flask import jsonify, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf

from idp import ratelimit
from idp.accounts.authn import session_account
from idp.accounts.forms import LoginForm, TermsForm, member_number_digits
from idp.accounts.levels import ACR_OTP, ACR_PASSWORD
from idp.accounts.models import Account
from idp.accounts.reauthentication import ENDED_BY_WRONG_PASSWORDS
from idp.accounts.services import SignInContext, accept_terms, account_by_id
from idp.deadlines import code_deadline
from idp.errors import SignInExpired
from idp.extensions import autocommit_shown, current_tenant, db, find_service, services
from idp.identifiers import is_member_number
from idp.mfa.forms import ChannelForm, CodeForm, ResendForm, wrong_code
from idp.mfa.services import OtpExpired, OtpInvalid, OtpLocked, ResendTooSoon
from idp.oidc import prompts
from idp.oidc.interactions import Interaction, shown_in_place
from idp.ratelimit import RateLimiter
from idp.records import record
from idp.signin import cookies, state
from idp.signin.completion import begin_second_factor, complete, finish_sign_in
from idp.signin.services import SignIn
from idp.tenancy import Tenant
from idp.web.errors import answers_json, onward, resend_wait
from idp.web.rendering import framed, render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("signin", __name__)


def _context() -> SignInContext:
    return SignInContext(ip=request.remote_addr, user_agent=request.user_agent.string,
                         locale=str(get_locale()))


@bp.route("/login", methods=["GET", "POST"])
def login():
    tenant = current_tenant()
    interaction_id = request.values.get("interaction")
    interaction = state.required_interaction(tenant, interaction_id)
    form = LoginForm(interaction=interaction_id)
    if request.method == "GET" and interaction is not None and not form.identifier.data:
        form.identifier.data = interaction.param("login_hint") or ""
    legacy_identifier = tenant.logs_in_with_email and is_member_number(form.identifier.data or "")
    if not form.validate_on_submit():
        return _login_page(tenant, form, interaction, status=400 if form.is_submitted() else 200,
                           notice=_ended_notice())
    if legacy_identifier and tenant.migration.phase() == "closed":
        # Refused whatever the number and password: the answer tells nothing about the account.
        find_service(SignIn).refuse_legacy_identifier(tenant, ip=request.remote_addr)
        error = _("Votre numéro d’adhérent ne permet plus de vous connecter : votre identifiant est "
                  "désormais votre adresse e-mail, avec le même mot de passe.")
        return _login_page(tenant, form, interaction, status=403, error=error, refused_legacy=True)
    account = find_service(SignIn).check_password(tenant, form.identifier.data, form.password.data,
                                                  _context(), known_accounts=cookies.known_accounts())
    if account is None:
        # One message whatever was wrong: never tell whether the identifier exists.
        error = _("Identifiant ou mot de passe incorrect.")
        if legacy_identifier:
            error += " " + _("Si vous avez déjà choisi votre adresse e-mail comme identifiant, "
                             "connectez-vous avec elle : votre numéro d’adhérent ne sert plus.")
        return _login_page(tenant, form, interaction, status=401, error=error)
    # A trusted browser skips the code, unless the request needs a fresh one.
    if not state.needs_fresh_code(interaction) and find_service(SignIn).trusted_browser(
            tenant, account, cookies.device_cookie(tenant)):
        return complete(tenant, account, amr=["pwd"], acr=ACR_PASSWORD,
                        interaction_id=interaction.id if interaction else None)
    return begin_second_factor(tenant, account, interaction, "login")


@shown_in_place(prompts.LOGIN)
def login_page(interaction: Interaction):
    """The sign-in page in the answer to the authorization request that asks for it: the same
    markup for every request but a few values (``framed``)."""
    tenant = current_tenant()
    # As the form shows it (its filter).
    hint = member_number_digits(interaction.param("login_hint") or "") or ""
    timing = state.sign_in_time(tenant, interaction.id, with_pending=False)
    if timing is None:
        form = LoginForm(formdata=None, interaction=interaction.id, identifier=hint)
        return _login_page(tenant, form, interaction)
    values = {"csrf_token": generate_csrf(), "identifier": hint, **_time_values(timing)}
    # What else the page's markup depends on: whether a login hint fills the identifier, the
    # migration's hint (email tenants), the warning's lead.
    shape = (bool(hint), tenant.migration.phase() == "closed", timing.deadline.warn_before)

    def context(page_values: Mapping[str, str]) -> dict:
        page_form = LoginForm(formdata=None, interaction=page_values["interaction"],
                              identifier=page_values["identifier"] if hint else "")
        return {"form": page_form, "interaction": interaction, "timing": _framed_time(timing, page_values),
                "error": None, "refused_legacy": False, "notice": None}

    return framed("login.html", shape, values, context)


def _time_values(timing: state.SignInTime) -> dict[str, str]:
    """The values a framed page writes of the sign-in's time limit (``sign_in_deadline``)."""
    return {"interaction": timing.interaction_id or "", "seconds_left": str(timing.deadline.seconds_left),
            "message": timing.message, "restart_url": timing.restart_url}


def _framed_time(timing: state.SignInTime, page_values: Mapping[str, str]) -> SimpleNamespace:
    """The sign-in's time limit as a framed page is given it: ``_time_values`` from
    ``page_values``, the warning's lead as it is (a part of the page's shape)."""
    limit = SimpleNamespace(seconds_left=page_values["seconds_left"], warn_before=timing.deadline.warn_before)
    return SimpleNamespace(deadline=limit, message=page_values["message"],
                           interaction_id=page_values["interaction"], restart_url=page_values["restart_url"])


def _login_page(tenant: Tenant, form: LoginForm, interaction: Interaction | None, *, status: int = 200,
                error: str | None = None, refused_legacy: bool = False, notice: str | None = None):
    """The sign-in page, with the time left to the sign-in it belongs to (a sign-in that goes on
    does not need it)."""
    timing = state.sign_in_time(tenant, interaction.id, with_pending=False) if interaction else None
    return render("login.html", status=status, form=form, error=error, interaction=interaction,
                  refused_legacy=refused_legacy, timing=timing, notice=notice)


def _ended_notice() -> str | None:
    """Why the account pages signed the member out, when they did."""
    if request.method == "GET" and request.args.get("ended") == ENDED_BY_WRONG_PASSWORDS:
        return _("Pour protéger votre compte, votre session a été fermée après plusieurs mots "
                 "de passe incorrects. Connectez-vous de nouveau, ou réinitialisez votre mot de passe "
                 "si vous l’avez oublié.")
    return None


@bp.post("/login/extend")
@answers_json
def extend_sign_in():
    """More time for the sign-in in progress, asked from its pages by deadline.js (WCAG 2.2.1)."""
    tenant = current_tenant()
    found = state.in_progress(tenant, request.form.get("interaction"))
    if found is None:
        return jsonify(error="expired", error_description=_(
            "Le temps pour vous connecter est écoulé. Pour votre sécurité, recommencez la connexion.")), 404
    RateLimiter(services().store, ratelimit.SIGN_IN_EXTENSIONS).consume(found.key)
    deadline = state.extend(tenant, found)
    message = _("C’est fait : vous avez plus de temps.") + " " + state.time_left_message(deadline)
    return jsonify(expires_in=deadline.seconds_left, message=message)


@bp.route("/login/terms", methods=["GET", "POST"])
def terms():
    """Accept the current terms (first sign-in or new version); Miel: communication preferences."""
    tenant = current_tenant()
    pending = state.required_pending(tenant, proven=True)
    account = _pending_account(pending)
    # Choices already made (a new version of the terms) are shown as they are; the preferences
    # are optional: what the member leaves is kept, or its default.
    form = TermsForm(data=account.preferences_or_defaults)
    if not tenant.communication_preferences:
        del form.statements, form.letters, form.marketing
    if form.validate_on_submit():
        preferences = form.preferences if tenant.communication_preferences else None
        accept_terms(db(), tenant, account, preferences, ip=request.remote_addr)
        return complete(tenant, account, amr=pending.amr or [], acr=pending.acr or ACR_PASSWORD,
                        interaction_id=pending.interaction)
    status = 400 if form.is_submitted() else 200
    return render("terms.html", status=status, form=form, timing=state.sign_in_time(tenant, None))


def _pending_account(pending: state.Pending) -> Account:
    account = account_by_id(db(), pending.account_id)
    if account is None or not account.is_active:
        raise SignInExpired()
    return account


def _destinations(reachable: Mapping[str, str]) -> dict[str, str]:
    """The ways to get a code (``state.reachable``), in words."""
    options = {}
    if "email" in reachable:
        options["email"] = _("Par e-mail à %(address)s", address=reachable["email"])
    if "sms" in reachable:
        options["sms"] = _("Par SMS au %(number)s", number=reachable["sms"])
    return options


def _shown_destinations(pending: state.Pending) -> dict[str, str]:
    """The ways to get a code a page shows: those the pending sign-in keeps, without reading the
    account (a sign-in pending from before they were kept reads it)."""
    if pending.reachable is None:
        return _destinations(state.reachable(_pending_account(pending)))
    return _destinations(pending.reachable)


@bp.get("/login/step-up")
def step_up():
    """A signed-in member asked for a stronger level by the client: a code, no password."""
    tenant = current_tenant()
    interaction = state.interaction(tenant, request.args.get("interaction"))
    signed_in = session_account(db(), tenant)
    if interaction is None or signed_in is None:
        raise SignInExpired()
    return begin_second_factor(tenant, signed_in[1], interaction, "step_up")


@bp.route("/login/code", methods=["GET", "POST"])
@autocommit_shown
def choose():
    tenant = current_tenant()
    pending = state.required_pending(tenant)
    if request.method == "GET":
        return _choose_page(tenant, _shown_destinations(pending))
    account = _pending_account(pending)
    ways = state.reachable(account)
    destinations = _destinations(ways)
    form = ChannelForm()
    if form.validate_on_submit():
        if form.channel.data in destinations:
            return _send(tenant, pending, account, ways, form.channel.data)
        form.channel.errors = [_("Choisissez où recevoir votre code.")]
    return _choose_page(tenant, destinations, form)


def _choose_page(tenant: Tenant, destinations: dict[str, str], form: ChannelForm | None = None):
    """The page to choose where the code goes: shown from its frame (``framed``), or whole with
    the errors of a ``form`` sent."""
    timing = state.sign_in_time(tenant, None)
    # The first way (email when there is one) is preselected: one tap less on a phone.
    first = next(iter(destinations), None)
    if form is not None or timing is None:
        form = form or ChannelForm(formdata=None, channel=first)
        return render("mfa_choose.html", form=form, destinations=destinations, timing=timing)
    values = {"csrf_token": generate_csrf(), **_time_values(timing),
              **{f"to_{channel}": text for channel, text in destinations.items()}}

    def context(page_values: Mapping[str, str]) -> dict:
        return {"form": ChannelForm(formdata=None, channel=first),
                "destinations": {channel: page_values[f"to_{channel}"] for channel in destinations},
                "timing": _framed_time(timing, page_values)}

    return framed("mfa_choose.html", (tuple(destinations), timing.deadline.warn_before), values, context)


@bp.post("/login/code/send")
@onward("signin.verify")
def resend():
    tenant = current_tenant()
    pending = state.required_pending(tenant)
    account = _pending_account(pending)
    form = ResendForm()
    ways = state.reachable(account)
    if not form.validate_on_submit() or form.channel.data not in ways:
        return redirect(url_for("signin.verify"), 303)
    return _send(tenant, pending, account, ways, form.channel.data, again=True)


def _send(tenant: Tenant, pending: state.Pending, account: Account, ways: dict[str, str], channel: str,
          *, again: bool = False):
    """Send a code to ``channel``, one of the account's ``ways`` (``state.reachable``), which the
    code's page then shows; ``again``: a new code asked from that page, which it confirms."""
    try:
        sent = find_service(SignIn).send_code(tenant, account, channel, ip=request.remote_addr or "?",
                                              previous=pending.current_challenge,
                                              replaces=pending.code_message)
    except ResendTooSoon as exc:
        # The code sent a moment ago still stands: its page, saying when a new one may be asked.
        body, status = _verify_page(tenant, pending, _destinations(ways), CodeForm(formdata=None),
                                    status=429, notice=resend_wait(exc.retry_after))
        return body, status, {"Retry-After": str(exc.retry_after)}
    pending.replaced, pending.challenge = pending.challenge, record(sent.challenge)
    pending.code_message = sent.message_id
    pending.reachable = ways
    state.save_pending(tenant, pending)
    return redirect(url_for("signin.verify", delayed=None if sent.delivered else "1",
                            resent="1" if again else None), 303)


def _verify_page(tenant: Tenant, pending: state.Pending, destinations: Mapping[str, str],
                 form: CodeForm | None = None, *, status: int = 200, notice: str | None = None):
    """The page to type the code in: shown from its frame (``framed``), or whole with the errors
    of a ``form`` sent, or with a ``notice``."""
    challenge = pending.current_challenge
    code = (code_deadline(challenge.expires_at - time.time(), tenant.mfa.otp_ttl_seconds)
            if challenge else None)
    timing = state.sign_in_time(tenant, None)
    # One limit on the page, the one that ends first: the code's, unless the sign-in's comes
    # sooner (then a new code would not help).
    if code is not None and (timing is None or code.seconds_left <= timing.deadline.seconds_left):
        timing = None
    else:
        code = None
    destination = destinations.get(challenge.channel) if challenge else None
    page = {"channel": challenge.channel if challenge else None,
            "other_channel": next((c for c in destinations if challenge and c != challenge.channel), None),
            "ttl_minutes": tenant.mfa.otp_ttl_seconds // 60, "delayed": request.args.get("delayed") == "1",
            "resent": request.args.get("resent") == "1", "can_remember": True, "notice": notice}
    # Within a sentence: "… un code à 6 chiffres par e-mail à …".
    sent_to = destination[:1].lower() + destination[1:] if destination else None
    if form is not None:
        return render("mfa_verify.html", status=status, form=form, resend_form=ResendForm(), **page,
                      destination=sent_to, code_deadline=code, timing=timing)
    values = {"csrf_token": generate_csrf(), "destination": sent_to or "",
              **({"code_seconds_left": str(code.seconds_left)} if code else {}),
              **(_time_values(timing) if timing else {})}
    limit = code or (timing.deadline if timing else None)
    shape = (tuple(sorted(page.items())), sent_to is not None, code is not None,
             limit.warn_before if limit else None)

    def context(page_values: Mapping[str, str]) -> dict:
        return {"form": CodeForm(formdata=None), "resend_form": ResendForm(formdata=None), **page,
                "destination": page_values["destination"] if sent_to else None,
                "code_deadline": SimpleNamespace(seconds_left=page_values["code_seconds_left"],
                                                 warn_before=code.warn_before) if code else None,
                "timing": _framed_time(timing, page_values) if timing else None}

    return framed("mfa_verify.html", shape, values, context, status)


@bp.route("/login/code/verify", methods=["GET", "POST"])
@autocommit_shown
def verify():
    tenant = current_tenant()
    pending = state.required_pending(tenant)
    challenge = pending.current_challenge
    if challenge is None:
        return redirect(url_for("signin.choose"), 303)
    if request.method == "GET":
        return _verify_page(tenant, pending, _shown_destinations(pending))
    account = _pending_account(pending)
    form = CodeForm()
    if not form.validate_on_submit():
        return _verify_page(tenant, pending, _destinations(state.reachable(account)), form, status=400)
    sign_in = find_service(SignIn)
    try:
        sign_in.check_code(tenant, account, challenge, form.code.data, ip=request.remote_addr or "?",
                           replaced=pending.replaced_challenge)
    except (OtpInvalid, OtpLocked, OtpExpired) as exc:
        if isinstance(exc, OtpInvalid):
            message = wrong_code(exc)
        elif isinstance(exc, OtpLocked):
            message = _("Trop de codes incorrects. Demandez un nouveau code.")
        else:
            message = _("Ce code a expiré. Demandez un nouveau code.")
        form.code.errors = [message]
        return _verify_page(tenant, pending, _destinations(state.reachable(account)), form, status=400)
    amr = ["pwd", "otp", "mail" if challenge.channel == "email" else "sms"]
    remembered = (sign_in.remember_browser(tenant, account, cookies.browser_label())
                  if form.remember.data else None)
    response = finish_sign_in(tenant, account, amr=amr, acr=ACR_OTP,
                              interaction_id=pending.interaction)
    if remembered:
        cookies.set_device_cookie(response, tenant, remembered)
    return response

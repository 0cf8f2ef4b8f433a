"""Second-factor pages: choose where the code goes, enter it, trust this browser."""

from __future__ import annotations

import time
from dataclasses import asdict

from flask import Response, abort, redirect, request, url_for
from flask_babel import gettext as _

from idp import events, ratelimit
from idp.accounts import flow
from idp.accounts.authn import ACR_OTP, session_account
from idp.accounts.models import Account
from idp.channels.masking import mask_email, mask_phone
from idp.channels.services import messages_service
from idp.db import utcnow
from idp.deadlines import code_deadline
from idp.extensions import current_tenant, db, services
from idp.mfa.forms import ChannelForm, CodeForm, ResendForm
from idp.mfa.services import OtpExpired, OtpInvalid, OtpLocked, OtpService, ResendTooSoon, TrustedDevices
from idp.oidc import authorization
from idp.ratelimit import RateLimiter, TooManyAttempts
from idp.tenancy import Tenant
from idp.tokens import KNOWN_BROWSER, TRUSTED_DEVICE, InvalidToken, TokenService
from idp.web import render, tenant_blueprint

bp = tenant_blueprint("mfa", __name__)

KNOWN_BROWSER_COOKIE = "idp-browser"
MAX_KNOWN_ACCOUNTS = 10


def _secure() -> bool:
    return services().settings.cookie_secure


def _cookie(name: str) -> str:
    return f"__Host-{name}" if _secure() else name


def device_cookie_name(tenant: Tenant) -> str:
    return _cookie(f"idp-device-{tenant.slug}")


def trusted_devices() -> TrustedDevices:
    return TrustedDevices(db(), TokenService(services().settings.secret_key, TRUSTED_DEVICE))


def otp_service() -> OtpService:
    return OtpService(services().store, services().settings.secret_key.encode())


def _state():
    """The pending sign-in and its account, or a redirect back to the start."""
    tenant = current_tenant()
    state = flow.pending(tenant)
    account = db().get(Account, state.account_id) if state else None
    if state is None or account is None or not account.is_active:
        return tenant, None, None
    return tenant, state, account


def _restart():
    message = _("Votre demande de connexion a expiré. Veuillez recommencer.")
    return render("error.html", status=400, error_code="expired", message=message)


def _destinations(account: Account) -> dict[str, str]:
    options = {}
    if account.email:
        options["email"] = _("Par e-mail à %(address)s", address=mask_email(account.email))
    if account.phone_number:
        options["sms"] = _("Par SMS au %(number)s", number=mask_phone(account.phone_number))
    return options


@bp.get("/login/step-up")
def step_up():
    """A signed-in member asked for a stronger level by the client: a code, no password."""
    tenant = current_tenant()
    interaction = authorization.interactions().load(request.args.get("interaction"), tenant.slug)
    signed_in = session_account(db(), tenant)
    if interaction is None or signed_in is None:
        return _restart()
    return flow.begin_second_factor(tenant, signed_in[1].id, interaction, "step_up")


@bp.route("/login/code", methods=["GET", "POST"])
def choose():
    tenant, state, account = _state()
    if state is None:
        return _restart()
    destinations = _destinations(account)
    form = ChannelForm()
    if request.method == "GET" and destinations:
        # The first way (email when there is one) is preselected: one tap less on a phone.
        form.channel.data = next(iter(destinations))
    if form.validate_on_submit():
        if form.channel.data in destinations:
            return _send(tenant, state, account, form.channel.data)
        form.channel.errors = [_("Choisissez où recevoir votre code.")]
    return render("mfa_choose.html", form=form, destinations=destinations,
                  timing=flow.sign_in_time(tenant, None))


@bp.post("/login/code/send")
def resend():
    tenant, state, account = _state()
    if state is None:
        return _restart()
    form = ResendForm()
    if not form.validate_on_submit() or form.channel.data not in _destinations(account):
        return redirect(url_for("mfa.verify"), 303)
    return _send(tenant, state, account, form.channel.data)


def _send(tenant: Tenant, state: flow.Pending, account: Account, channel: str):
    recipient = account.email if channel == "email" else account.phone_number
    if not recipient:
        abort(400)
    store = services().store
    ip = request.remote_addr or "?"
    limits = [(RateLimiter(store, ratelimit.OTP_SEND_PER_ACCOUNT), account.id),
              (RateLimiter(store, ratelimit.OTP_SEND_PER_IP), ip)]
    if channel == "sms":
        limits.append((RateLimiter(store, ratelimit.OTP_SEND_PER_PHONE), recipient))
    try:
        for limiter, subject in limits:
            limiter.test(subject)
        challenge, code = otp_service().issue(tenant, account.id, channel, state.current_challenge)
    except (TooManyAttempts, ResendTooSoon) as exc:
        seconds = exc.retry_after
        return _verify_page(tenant, state, account, CodeForm(), status=429, notice=_(
            "Vous avez demandé un code il y a peu. Vous pourrez en demander un nouveau dans "
            "%(seconds)s secondes.", seconds=seconds))
    for limiter, subject in limits:
        limiter.hit(subject)
    messages = messages_service()
    message = messages.queue_code(tenant, channel, "otp_code", recipient, code=code,
                                  valid_until=challenge.valid_until, replaces=state.code_message)
    state.challenge = asdict(challenge)
    state.code_message = message.id
    flow.save_pending(tenant, state)
    events.record_event(db(), events.OTP_SENT, tenant=tenant.slug, account_id=account.id,
                        channel=channel)
    db().commit()
    delivered = messages.send_now(message)
    return redirect(url_for("mfa.verify", delayed="1" if not delivered else None), 303)


def _verify_page(tenant, state, account, form, *, status=200, error=None, notice=None):
    challenge = state.current_challenge
    destinations = _destinations(account)
    return render(
        "mfa_verify.html", status=status, form=form, error=error, notice=notice,
        channel=challenge.channel if challenge else None,
        destination=destinations.get(challenge.channel) if challenge else None,
        other_channel=next((c for c in destinations if challenge and c != challenge.channel), None),
        resend_form=ResendForm(), ttl_minutes=tenant.mfa.otp_ttl_seconds // 60,
        delayed=request.args.get("delayed") == "1", can_remember=True,
        code_deadline=code_deadline(challenge.expires_at - time.time(), tenant.mfa.otp_ttl_seconds)
        if challenge else None,
        timing=flow.sign_in_time(tenant, None),
    )


@bp.route("/login/code/verify", methods=["GET", "POST"])
def verify():
    tenant, state, account = _state()
    if state is None:
        return _restart()
    challenge = state.current_challenge
    if challenge is None:
        return redirect(url_for("mfa.choose"), 303)
    form = CodeForm()
    if not form.validate_on_submit():
        return _verify_page(tenant, state, account, form)
    store = services().store
    ip = request.remote_addr or "?"
    per_account = RateLimiter(store, ratelimit.OTP_VERIFY_PER_ACCOUNT)
    per_ip = RateLimiter(store, ratelimit.OTP_VERIFY_PER_IP)
    try:
        per_account.test(account.id)
        per_ip.test(ip)
        otp_service().verify(tenant, challenge, form.code.data)
    except TooManyAttempts:
        return _verify_page(tenant, state, account, form, status=429, error=_(
            "Trop de codes incorrects. Patientez quelques minutes avant de réessayer."))
    except (OtpInvalid, OtpLocked, OtpExpired) as exc:
        per_account.hit(account.id)
        per_ip.hit(ip)
        events.record_event(db(), events.OTP_FAILURE, tenant=tenant.slug, account_id=account.id,
                            channel=challenge.channel, reason=type(exc).__name__)
        db().commit()
        if isinstance(exc, OtpInvalid):
            message = _("Code incorrect. Il vous reste %(count)s essai(s).", count=exc.remaining)
        elif isinstance(exc, OtpLocked):
            message = _("Trop de codes incorrects. Demandez un nouveau code.")
        else:
            message = _("Ce code a expiré. Demandez un nouveau code.")
        form.code.errors = [message]
        return _verify_page(tenant, state, account, form, status=400)
    per_account.clear(account.id)
    amr = ["pwd", "otp", "mail" if challenge.channel == "email" else "sms"]
    remembered = None
    if form.remember.data:
        _device, remembered = trusted_devices().remember(tenant, account.id, browser_label())
    response = finish_sign_in(tenant, account, amr=amr, acr=ACR_OTP, interaction_id=state.interaction)
    if remembered:
        _set_cookie(response, device_cookie_name(tenant), remembered,
                    tenant.mfa.trusted_device_days * 86400, samesite="Strict")
    return response


def finish_sign_in(tenant: Tenant, account: Account, *, amr: list[str], acr: str,
                   interaction_id: str | None):
    """The last factor is proven: commit, tell the member of a new browser, and sign in."""
    known = _known_accounts()
    new_browser = account.id not in known
    notice = _notify_new_device(tenant, account) if new_browser else None
    db().commit()
    if notice is not None:
        messages_service().send_now(notice)
    response = flow.complete(tenant, account, amr=amr, acr=acr, interaction_id=interaction_id)
    if new_browser:
        known = [account.id, *known][:MAX_KNOWN_ACCOUNTS]
        _set_cookie(response, _cookie(KNOWN_BROWSER_COOKIE), _known_tokens().dumps(known),
                    KNOWN_BROWSER.max_age, samesite="Lax")
    return response


def _known_tokens() -> TokenService:
    return TokenService(services().settings.secret_key, KNOWN_BROWSER)


def _known_accounts() -> list[str]:
    """Accounts that already signed in from this browser (for new-device notices)."""
    raw = request.cookies.get(_cookie(KNOWN_BROWSER_COOKIE))
    if not raw:
        return []
    try:
        value = _known_tokens().loads(raw)
    except InvalidToken:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def browser_label() -> str:
    agent = request.user_agent
    browser = (agent.browser or "").capitalize() or _("Navigateur")
    platform = (agent.platform or "").capitalize()
    return f"{browser} — {platform}" if platform else browser


def _notify_new_device(tenant: Tenant, account: Account):
    """Queue the "new sign-in from …" email (SPEC §5); the caller commits then sends."""
    if not account.email:
        return None
    message = messages_service().queue(
        tenant, "email", "new_device", account.email, device=browser_label(),
        when=utcnow().strftime("%d/%m/%Y %H:%M UTC"), reset_url=f"{tenant.issuer}/forgot-password",
    )
    events.record_event(db(), events.NEW_DEVICE_NOTIFIED, tenant=tenant.slug, account_id=account.id)
    return message


def _set_cookie(response: Response, name: str, value: str, max_age: int, samesite: str) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=_secure(), httponly=True,
                        samesite=samesite)

"""Hosted pages: sign-in and consent, reached from an interaction."""

from __future__ import annotations

from flask import jsonify, make_response, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select

from idp import events, ratelimit
from idp.accounts import flow
from idp.accounts.authn import ACR_PASSWORD, session_account, sign_in, sign_out
from idp.accounts.contact_views import password_given_again
from idp.accounts.forms import (
    ChangePasswordForm,
    ConfirmForm,
    ConsentForm,
    DeleteAccountForm,
    LoginForm,
    TermsForm,
)
from idp.accounts.models import Account
from idp.accounts.passwords import PersonalData, password_errors
from idp.accounts.services import Authenticator, SignInContext, is_member_number, set_password
from idp.channels.masking import mask_phone
from idp.channels.services import messages_service
from idp.db import utcnow
from idp.events import AuditEvent
from idp.extensions import current_tenant, db, services
from idp.mfa.views import device_cookie_name, trusted_devices
from idp.oidc import authorization
from idp.oidc.claims import SCOPE_CLAIMS
from idp.oidc.interactions import Interaction
from idp.oidc.models import Client, Consent
from idp.passkeys.services import Passkeys
from idp.ratelimit import RateLimiter, TooManyAttempts
from idp.web import render, session_deadline, session_time_message, tenant_blueprint

bp = tenant_blueprint("accounts", __name__)


def _interaction(interaction_id: str | None) -> Interaction | None:
    return authorization.interactions().load(interaction_id, current_tenant().slug)


def _expired():
    message = _("Cette demande de connexion a expiré. Retournez sur votre espace et recommencez.")
    return render("error.html", status=400, error_code="invalid_request", message=message)


def _client_for(interaction: Interaction) -> Client | None:
    return db().scalar(
        select(Client).where(
            Client.client_id == interaction.param("client_id"),
            Client.tenant == current_tenant().slug,
        )
    )


@bp.route("/login", methods=["GET", "POST"])
def login():
    tenant = current_tenant()
    interaction_id = request.values.get("interaction")
    interaction = _interaction(interaction_id)
    if interaction_id and interaction is None:
        return _expired()
    form = LoginForm(interaction=interaction_id)
    timing = flow.sign_in_time(tenant, interaction_id, with_pending=False) if interaction else None
    if request.method == "GET" and interaction is not None and not form.identifier.data:
        form.identifier.data = interaction.param("login_hint") or ""
    error = None
    status = 200
    legacy_identifier = tenant.logs_in_with_email and is_member_number(form.identifier.data or "")
    if legacy_identifier and tenant.migration.phase() == "closed" and form.validate_on_submit():
        # Refused whatever the number and password: the answer tells nothing about the account.
        events.record_event(db(), events.LEGACY_LOGIN_REFUSED, tenant=tenant.slug,
                            ip=request.remote_addr)
        db().commit()
        error = _("Votre numéro d’adhérent ne permet plus de vous connecter : votre identifiant est "
                  "désormais votre adresse e-mail, avec le même mot de passe.")
        return render("login.html", status=403, form=form, error=error, interaction=interaction,
                      refused_legacy=True, timing=timing)
    if form.validate_on_submit():
        try:
            account = _check_password(tenant, form.identifier.data, form.password.data)
        except TooManyAttempts as exc:
            minutes = max(1, (exc.retry_after + 59) // 60)
            error = _("Trop de tentatives. Par sécurité, la connexion est bloquée pendant "
                      "%(minutes)s minutes. Pour la débloquer tout de suite, réinitialisez votre "
                      "mot de passe.", minutes=minutes)
            status = 429
        else:
            if account is not None:
                return _after_password(tenant, account, interaction)
            # One message whatever was wrong: never tell whether the identifier exists.
            error = _("Identifiant ou mot de passe incorrect.")
            if legacy_identifier:
                error += " " + _("Si vous avez déjà choisi votre adresse e-mail comme identifiant, "
                                 "connectez-vous avec elle : votre numéro d’adhérent ne sert plus.")
            status = 401
    return render("login.html", status=status, form=form, error=error, interaction=interaction,
                  refused_legacy=False, timing=timing)


@bp.post("/login/extend")
def extend_sign_in():
    """More time for the sign-in in progress, asked from its pages by deadline.js (WCAG 2.2.1)."""
    tenant = current_tenant()
    found = flow.in_progress(tenant, request.form.get("interaction"))
    if found is None:
        return jsonify(error="expired", error_description=_(
            "Le temps pour vous connecter est écoulé. Pour votre sécurité, recommencez la connexion.")), 404
    if not RateLimiter(services().store, ratelimit.SIGN_IN_EXTENSIONS).allow(found.key):
        return jsonify(error="too_many_extensions", error_description=_(
            "Vous avez déjà eu plus de temps plusieurs fois. Terminez votre connexion, ou "
            "recommencez-la plus tard.")), 429
    deadline = flow.extend(tenant, found)
    message = _("C’est fait : vous avez plus de temps.") + " " + flow.time_left_message(deadline)
    return jsonify(expires_in=deadline.seconds_left, message=message)


@bp.post("/session/extend")
def extend_session():
    """More time on a page whose forms depend on the session, asked by deadline.js (WCAG 2.2.1).

    The CSRF check has already found the session alive; writing it back restarts its idle timer.
    The absolute timeout still ends it.
    """
    session.modified = True
    deadline = session_deadline()
    message = _("C’est fait : vous avez plus de temps.") + " " + session_time_message(deadline)
    return jsonify(expires_in=deadline.seconds_left, message=message)


def _check_password(tenant, identifier: str, password: str) -> Account | None:
    """The password check, bounded per identifier and per address (SPEC §5)."""
    store = services().store
    per_identifier = RateLimiter(store, ratelimit.LOGIN_PER_IDENTIFIER)
    per_ip = RateLimiter(store, ratelimit.LOGIN_PER_IP)
    # Keyed on what was typed, so unknown identifiers lock exactly like real ones.
    subject = f"{tenant.slug}:{identifier.strip().lower()}"
    ip = request.remote_addr or "?"
    per_identifier.test(subject)
    per_ip.test(ip)
    authenticator = Authenticator(db(), services().hasher)
    context = SignInContext(ip=ip, user_agent=request.user_agent.string, locale=str(get_locale()))
    account = authenticator.authenticate(tenant, identifier, password, context)
    if account is None:
        per_ip.hit(ip)
        if per_identifier.hit(subject) >= ratelimit.LOGIN_PER_IDENTIFIER.limit:
            events.record_event(db(), events.LOGIN_LOCKED, tenant=tenant.slug, ip=ip)
            db().commit()
            per_identifier.test(subject)
        return None
    per_identifier.clear(subject)
    return account


def _after_password(tenant, account: Account, interaction):
    """A trusted browser skips the code, unless the request needs a fresh one."""
    if not flow.needs_fresh_code(interaction):
        device = trusted_devices().recognise(tenant, account.id, request.cookies.get(
            device_cookie_name(tenant)))
        if device is not None:
            db().commit()
            return flow.complete(tenant, account, amr=["pwd"], acr=ACR_PASSWORD,
                                 interaction_id=interaction.id if interaction else None)
    return flow.begin_second_factor(tenant, account.id, interaction, "login")


@bp.route("/login/terms", methods=["GET", "POST"])
def terms():
    """Accept the current terms (first sign-in or new version); Miel: communication preferences."""
    tenant = current_tenant()
    state = flow.pending(tenant)
    account = db().get(Account, state.account_id) if state and state.amr else None
    if account is None or not account.is_active:
        message = _("Votre demande de connexion a expiré. Veuillez recommencer.")
        return render("error.html", status=400, error_code="expired", message=message)
    form = TermsForm()
    if request.method == "GET" and account.preferences:
        form.statements.data = account.preferences.get("statements", "email")
        form.letters.data = account.preferences.get("letters", "email")
        form.marketing.data = bool(account.preferences.get("marketing"))
    if form.validate_on_submit():
        account.terms_version, account.terms_accepted_at = tenant.terms_version, utcnow()
        if tenant.communication_preferences:
            account.preferences = {"statements": form.statements.data,
                                   "letters": form.letters.data,
                                   "marketing": bool(form.marketing.data)}
        events.record_event(db(), events.TERMS_ACCEPTED, tenant=tenant.slug,
                            account_id=account.id, version=tenant.terms_version)
        db().commit()
        return flow.complete(tenant, account, amr=state.amr, acr=state.acr,
                             interaction_id=state.interaction)
    status = 400 if form.is_submitted() else 200
    return render("terms.html", status=status, form=form, timing=flow.sign_in_time(tenant, None))


@bp.get("/signed-in")
def signed_in():
    return redirect(url_for("accounts.account"), 303)


def _signed_in_account() -> Account | None:
    signed_in = session_account(db(), current_tenant())
    return signed_in[1] if signed_in else None


@bp.get("/account")
def account():
    """The member's own page: who they are, their passkeys and the browsers they trust."""
    member = _signed_in_account()
    if member is None:
        return redirect(url_for("accounts.login"), 303)
    devices = trusted_devices().list(member.id)
    sign_ins = db().scalars(
        select(AuditEvent)
        .where(AuditEvent.account_id == member.id, AuditEvent.tag == events.LOGIN_SUCCESS)
        .order_by(AuditEvent.id.desc()).limit(10)
    ).all()
    masked_phone = mask_phone(member.phone_number) if member.phone_number else None
    return render("account.html", account=member, devices=devices, form=ConfirmForm(),
                  sign_ins=sign_ins, passkeys=Passkeys(db(), services().store).list(member.id),
                  changed=request.args.get("changed"), masked_phone=masked_phone)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Change the password (the current one is asked again); every other session ends."""
    tenant = current_tenant()
    signed_in = session_account(db(), tenant)
    if signed_in is None:
        return redirect(url_for("accounts.login"), 303)
    authentication, member = signed_in
    form = ChangePasswordForm()
    failed: list[str] = []
    if form.validate_on_submit() and password_given_again(member, form):
        failed = password_errors(form.password.data, tenant.password, PersonalData.of(member))
        if not failed:
            set_password(db(), services().hasher, member, form.password.data, reason="change")
            notice = (messages_service().queue(
                tenant, "email", "password_changed", member.email,
                login_url=f"{tenant.issuer}/login") if member.email else None)
            db().commit()
            if notice is not None:
                messages_service().send_now(notice)
            # This browser stays signed in, at the level it had; all others are signed out.
            sign_in(tenant, member, amr=authentication.amr, acr=authentication.acr)
            return redirect(url_for("accounts.account", changed="password"), 303)
        form.password.errors = [_("Ce mot de passe ne respecte pas toutes les règles ci-dessous.")]
    status = 400 if form.is_submitted() else 200
    return render("change_password.html", status=status, form=form, failed=failed)


@bp.route("/account/delete", methods=["GET", "POST"])
def delete_account():
    """Delete the account after the password is given again (SPEC §6); audit-logged."""
    tenant = current_tenant()
    signed_in = session_account(db(), tenant)
    if signed_in is None:
        return redirect(url_for("accounts.login"), 303)
    member = signed_in[1]
    form = DeleteAccountForm()
    if form.validate_on_submit() and password_given_again(member, form):
        email = member.email
        events.record_event(db(), events.ACCOUNT_DELETED, tenant=tenant.slug,
                            account_id=member.id, ip=request.remote_addr)
        # Tokens, codes, consents, trusted devices and passkeys go with the account (ON DELETE CASCADE).
        db().delete(member)
        notice = messages_service().queue(tenant, "email", "account_deleted", email) if email else None
        db().commit()
        if notice is not None:
            messages_service().send_now(notice)
        sign_out(tenant)
        return redirect(url_for("accounts.account_deleted"), 303)
    status = 400 if form.is_submitted() else 200
    return render("delete_account.html", status=status, form=form)


@bp.get("/account/deleted")
def account_deleted():
    return render("account_deleted.html")


@bp.post("/account/devices/revoke")
def revoke_devices():
    member = _signed_in_account()
    if member is None:
        return redirect(url_for("accounts.login"), 303)
    form = ConfirmForm()
    if form.validate_on_submit():
        device_id = request.form.get("device")
        if device_id:
            trusted_devices().revoke(member.id, device_id)
        else:
            trusted_devices().revoke_all(member.id)
        db().commit()
    return redirect(url_for("accounts.account"), 303)


@bp.route("/consent", methods=["GET", "POST"])
def consent():
    tenant = current_tenant()
    interaction = _interaction(request.values.get("interaction"))
    signed_in = session_account(db(), tenant)
    if interaction is None or signed_in is None:
        return _expired()
    authentication = signed_in[0]
    client = _client_for(interaction)
    if client is None:
        return _expired()
    scopes = [s for s in (interaction.param("scope") or "").split() if s in client.scopes]
    form = ConsentForm(interaction=interaction.id)
    if form.validate_on_submit():
        if form.deny.data:
            return authorization.deny(interaction)
        row = db().scalar(
            select(Consent).where(
                Consent.account_id == authentication.account_id,
                Consent.client_id == client.client_id,
            )
        )
        if row is None:
            row = Consent(account_id=authentication.account_id, client_id=client.client_id, scopes=[])
            db().add(row)
        row.scopes = sorted(set(row.scopes) | set(scopes))
        events.record_event(
            db(), events.CONSENT_GRANTED, tenant=tenant.slug,
            account_id=authentication.account_id, client_id=client.client_id, scopes=scopes,
        )
        db().commit()
        interaction.consent_done = True
        authorization.interactions().save(interaction)
        return redirect(url_for("oidc.resume", interaction=interaction.id), 303)
    claims = {scope: SCOPE_CLAIMS.get(scope, ()) for scope in scopes}
    return render("consent.html", form=form, client=client, scopes=scopes, claims=claims,
                  timing=flow.sign_in_time(tenant, interaction.id, with_pending=False))


@bp.get("/brand.css")
def brand_css():
    tenant = current_tenant()
    response = make_response(render_template("base/brand.css", tenant=tenant))
    response.headers["Content-Type"] = "text/css; charset=utf-8"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response

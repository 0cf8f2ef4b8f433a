"""The member's account pages on the provider, and the consent page of an interaction."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, jsonify, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from idp import events
from idp.accounts import services as accounts
from idp.accounts.authn import current_authentication, renew, session_account, sign_out
from idp.accounts.devices import device_in_words
from idp.accounts.forms import (
    ChangePasswordForm,
    ConfirmForm,
    ConsentForm,
    DeleteAccountForm,
    PreferencesForm,
)
from idp.accounts.models import Account
from idp.accounts.passwords import PersonalData, password_errors
from idp.accounts.reauthentication import password_given_again
from idp.channels.masking import mask_phone
from idp.channels.services import Messages
from idp.errors import SignInExpired
from idp.events import AuditEvent
from idp.extensions import current_tenant, db, find_service, services
from idp.mfa.services import TrustedDevices
from idp.oidc.interaction_api import ConsentGiven, InteractionApi
from idp.oidc.sessions import ProviderSessions
from idp.passkeys.services import Passkeys
from idp.signin.cookies import device_cookie
from idp.signin.state import sign_in_time
from idp.web.errors import answers_json
from idp.web.rendering import moment_filter, render, session_deadline, session_time_message
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("accounts", __name__)


@bp.post("/session/extend")
@answers_json
def extend_session():
    """More time on a page whose forms depend on the session, asked by deadline.js (WCAG 2.2.1).

    The CSRF check has already found the session alive; writing it back restarts its idle timer.
    The absolute timeout still ends it.
    """
    session.modified = True
    deadline = session_deadline()
    message = _("C’est fait : vous avez plus de temps.") + " " + session_time_message(deadline)
    return jsonify(expires_in=deadline.seconds_left, message=message)


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
        return redirect(url_for("signin.login"), 303)
    current_device = _current_device(member)
    # This browser first, as in the sessions' list.
    devices = sorted(find_service(TrustedDevices).list(member.id),
                     key=lambda device: device.id != current_device)
    sign_ins = db().scalars(
        select(AuditEvent)
        .where(AuditEvent.account_id == member.id, AuditEvent.tag == events.LOGIN_SUCCESS)
        .order_by(AuditEvent.id.desc()).limit(10)
    ).all()
    masked_phone = mask_phone(member.phone_number) if member.phone_number else None
    # Shown through their form's fields, which word the choices.
    preferences = (PreferencesForm(formdata=None, data=member.preferences_or_defaults)
                   if current_tenant().communication_preferences else None)
    return render("account.html", account=member, devices=devices, current_device=current_device,
                  form=ConfirmForm(), sign_ins=sign_ins, passkeys=find_service(Passkeys).list(member.id),
                  changed=request.args.get("changed"), masked_phone=masked_phone,
                  sessions=_sessions(member), preferences=preferences)


@dataclass(frozen=True)
class _SessionRow:
    sid: str
    device: str
    started: str
    last_seen: str
    portals: list[str]
    current: bool


def _sessions(member: Account) -> list[_SessionRow]:
    """The member's provider sessions, this one first, times in words in the tenant's zone."""
    authentication = current_authentication(current_tenant())
    current = authentication.sid if authentication else None
    rows = [_SessionRow(found.sid, device_in_words(found.user_agent), moment_filter(found.started_at),
                        moment_filter(found.last_seen_at), found.clients, found.sid == current)
            for found in find_service(ProviderSessions).active(member.id)]
    return sorted(rows, key=lambda row: not row.current)


@bp.post("/account/sessions/end")
def end_session():
    """Sign out one other session of the member (this one stays: the logout link ends it)."""
    signed_in = session_account(db(), current_tenant())
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    authentication, member = signed_in
    form = ConfirmForm()
    sid = request.form.get("session", "")
    if not form.validate_on_submit() or not sid:
        return redirect(url_for("accounts.account"), 303)
    ended = find_service(ProviderSessions).end(current_tenant().slug, member.id, sids=[sid],
                                               keep=authentication.sid, reason="account-page")
    return redirect(url_for("accounts.account", changed="session-ended" if ended.sessions
                            else "session-gone"), 303)


@bp.post("/account/sessions/end-others")
def end_other_sessions():
    """Sign out every session of the member but this one."""
    signed_in = session_account(db(), current_tenant())
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    authentication, member = signed_in
    form = ConfirmForm()
    if not form.validate_on_submit():
        return redirect(url_for("accounts.account"), 303)
    find_service(ProviderSessions).end(current_tenant().slug, member.id, keep=authentication.sid,
                                       reason="account-page-others")
    return redirect(url_for("accounts.account", changed="sessions-ended"), 303)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Change the password (the current one is asked again); every other session ends."""
    tenant = current_tenant()
    signed_in = session_account(db(), tenant)
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    authentication, member = signed_in
    form = ChangePasswordForm()
    failed: list[str] = []
    if form.validate_on_submit() and password_given_again(member, form):
        failed = password_errors(form.password.data, tenant.password, PersonalData.of(member))
        if not failed:
            accounts.change_password(db(), services().hasher, find_service(Messages), tenant, member,
                                     form.password.data, keep_sid=authentication.sid)
            # This browser stays signed in, at the level it had; all others are signed out.
            renew(tenant, member)
            return redirect(url_for("accounts.account", changed="password"), 303)
        form.password.errors = [_("Ce mot de passe ne respecte pas toutes les règles ci-dessous.")]
    status = 400 if form.is_submitted() else 200
    return render("change_password.html", status=status, form=form, failed=failed)


@bp.route("/account/preferences", methods=["GET", "POST"])
def communication_preferences():
    """The communication preferences asked at first sign-in (SPEC §3.2), changed at any time:
    where the tenant has them."""
    tenant = current_tenant()
    if not tenant.communication_preferences:
        abort(404)
    member = _signed_in_account()
    if member is None:
        return redirect(url_for("signin.login"), 303)
    form = PreferencesForm(data=member.preferences_or_defaults)
    if form.validate_on_submit():
        accounts.set_preferences(db(), tenant, member, form.preferences, ip=request.remote_addr)
        return redirect(url_for("accounts.account", changed="preferences"), 303)
    status = 400 if form.is_submitted() else 200
    return render("communication_preferences.html", status=status, form=form)


@bp.route("/account/delete", methods=["GET", "POST"])
def delete_account():
    """Delete the account after the password is given again (SPEC §6); audit-logged."""
    tenant = current_tenant()
    signed_in = session_account(db(), tenant)
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    member = signed_in[1]
    form = DeleteAccountForm()
    if form.validate_on_submit() and password_given_again(member, form):
        accounts.delete_account(db(), find_service(Messages), tenant, member, ip=request.remote_addr)
        sign_out(tenant)
        return redirect(url_for("accounts.account_deleted"), 303)
    status = 400 if form.is_submitted() else 200
    return render("delete_account.html", status=status, form=form)


@bp.get("/account/deleted")
def account_deleted():
    return render("account_deleted.html")


@bp.route("/account/devices/revoke", methods=["GET", "POST"])
def revoke_devices():
    """Forget one trusted browser (``device``), or all of them: a page asks first, and its
    form does it."""
    member = _signed_in_account()
    if member is None:
        return redirect(url_for("signin.login"), 303)
    trusted = find_service(TrustedDevices)
    device_id = request.values.get("device")
    if device_id:
        device = trusted.get(member.id, device_id)
        devices = [device] if device else []
    else:
        devices = trusted.list(member.id)
    if not devices:
        # Forgotten meanwhile (another tab, a password change): nothing left to ask about.
        return redirect(url_for("accounts.account"), 303)
    form = ConfirmForm()
    if form.validate_on_submit() and form.confirm.data:
        if device_id:
            trusted.revoke(member.id, device_id)
        else:
            trusted.revoke_all(member.id)
        return redirect(url_for("accounts.account", changed="device-removed" if device_id
                                else "devices-removed"), 303)
    return render("revoke_devices.html", form=form, devices=devices, one=bool(device_id),
                  current_device=_current_device(member))


def _current_device(member: Account) -> str | None:
    """The trusted device this browser's cookie names, if it is the member's."""
    tenant = current_tenant()
    return find_service(TrustedDevices).named(tenant, member.id, device_cookie(tenant))


@bp.route("/consent", methods=["GET", "POST"])
def consent():
    tenant = current_tenant()
    api = find_service(InteractionApi)
    interaction = api.load(request.values.get("interaction"), tenant.slug)
    signed_in = session_account(db(), tenant)
    client = api.client(interaction) if interaction is not None else None
    if interaction is None or signed_in is None or client is None:
        raise SignInExpired()
    authentication = signed_in[0]
    asked = api.consent_request(interaction, client)
    form = ConsentForm(interaction=interaction.id)
    if form.validate_on_submit():
        if form.deny.data:
            return api.abort(interaction)
        given = ConsentGiven(authentication.account_id, client.client_id, asked.scopes, asked.claims)
        return api.finish(interaction, consent=given)
    return render("consent.html", form=form, client=client, scopes=asked.scopes, claims=asked.claims,
                  timing=sign_in_time(tenant, interaction.id, with_pending=False))


@bp.get("/brand.css")
def brand_css():
    tenant = current_tenant()
    response = make_response(render_template("base/brand.css", tenant=tenant))
    response.headers["Content-Type"] = "text/css; charset=utf-8"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response

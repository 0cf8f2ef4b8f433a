"""Passkey pages: add (password again first), rename and remove; sign in "en 1 clic".

The browser side is static/passkeys.js: it asks an options endpoint for a
challenge (JSON), runs the WebAuthn ceremony, and posts the result in an
ordinary form, so that answers are the usual pages and redirects.
"""

from __future__ import annotations

import functools
import time

from flask import abort, jsonify, redirect, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from idp import events, ratelimit
from idp.accounts.authn import session_account
from idp.accounts.forms import ConfirmForm, LoginForm
from idp.accounts.levels import ACR_PASSKEY
from idp.accounts.models import Account
from idp.accounts.reauthentication import password_given_again
from idp.accounts.services import SignInContext
from idp.channels.services import Messages
from idp.extensions import current_tenant, db, find_service, services
from idp.passkeys.forms import NewPasskeyForm, PasskeyPasswordForm, PasskeySignInForm, RenamePasskeyForm
from idp.passkeys.models import Passkey
from idp.passkeys.services import (
    CeremonyExpired,
    PasskeyAlreadyRegistered,
    PasskeyBlocked,
    PasskeyError,
    Passkeys,
    UnknownPasskey,
)
from idp.ratelimit import RateLimiter
from idp.signin import state as sign_in_state
from idp.signin.completion import finish_sign_in
from idp.signin.cookies import browser_label
from idp.tenancy import Tenant
from idp.web.errors import answers_json
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("passkeys", __name__)

# Session keys: when the password was last given again, per tenant ([account id, time]),
# and the ceremony in progress per tenant and purpose.
REAUTHENTICATED = "passkey_reauth"
CEREMONIES = "passkey_ceremonies"
# Adding a passkey must follow the password within this many seconds.
REAUTH_TTL = 5 * 60


def _ceremony(tenant: Tenant, purpose: str, *, take: bool = False) -> str | None:
    entries = dict(session.get(CEREMONIES) or {})
    key = f"{tenant.slug}:{purpose}"
    if take and key in entries:
        ceremony = entries.pop(key)
        session[CEREMONIES] = entries
        return ceremony
    return entries.get(key)


def _keep_ceremony(tenant: Tenant, purpose: str, ceremony: str) -> None:
    session[CEREMONIES] = {**(session.get(CEREMONIES) or {}), f"{tenant.slug}:{purpose}": ceremony}


def _member() -> Account | None:
    signed_in = session_account(db(), current_tenant())
    return signed_in[1] if signed_in else None


def _member_required(view):
    """The view gets the signed-in member; anyone else goes to the sign-in page."""
    @functools.wraps(view)
    def with_member(**kwargs):
        member = _member()
        if member is None:
            return redirect(url_for("signin.login"), 303)
        return view(member, **kwargs)
    return with_member


def _own_passkey(member: Account, passkey_id: str) -> Passkey:
    passkey = find_service(Passkeys).get(member.id, passkey_id)
    if passkey is None:
        abort(404)
    return passkey


def _reauthenticated_member() -> Account | None:
    """The signed-in member, if they gave their password again a moment ago."""
    member = _member()
    entry = (session.get(REAUTHENTICATED) or {}).get(current_tenant().slug)
    if member is None or not entry or entry[0] != member.id or time.time() - entry[1] > REAUTH_TTL:
        return None
    return member


def _notify(tenant: Tenant, member: Account, template: str, **context) -> None:
    """Tell the member of the change by email (when the account has one)."""
    if member.email:
        find_service(Messages).queue(tenant, "email", template, member.email,
                                     account_url=f"{tenant.issuer}/account", **context)


def _record_failure(tenant: Tenant, exc: PasskeyError, account_id: str | None = None) -> None:
    events.record_event(db(), events.PASSKEY_FAILURE, tenant=tenant.slug, account_id=account_id,
                        ip=request.remote_addr, reason=exc.reason)


@bp.route("/account/passkeys/new", methods=["GET", "POST"])
@_member_required
def add(member: Account):
    """First the password again (a session alone is not enough to add a way in)."""
    tenant = current_tenant()
    form = PasskeyPasswordForm()
    if form.validate_on_submit() and password_given_again(member, form):
        session[REAUTHENTICATED] = {**(session.get(REAUTHENTICATED) or {}),
                                    tenant.slug: [member.id, time.time()]}
        return redirect(url_for("passkeys.create"), 303)
    status = 400 if form.is_submitted() else 200
    return render("passkey_password.html", status=status, form=form)


@bp.post("/account/passkeys/options")
@answers_json
def creation_options():
    """Options for navigator.credentials.create(); a new challenge replaces the previous one."""
    tenant = current_tenant()
    member = _reauthenticated_member()
    if member is None:
        return jsonify(error="login_required"), 403
    ceremony, options = find_service(Passkeys).registration_options(
        tenant, member, _ceremony(tenant, "create"))
    _keep_ceremony(tenant, "create", ceremony)
    return jsonify(options)


@bp.route("/account/passkeys/create", methods=["GET", "POST"])
def create():
    tenant = current_tenant()
    member = _reauthenticated_member()
    if member is None:
        return redirect(url_for("passkeys.add"), 303)
    form = NewPasskeyForm()
    if request.method == "GET":
        form.name.data = browser_label()
    error = None
    if form.validate_on_submit():
        if not form.credential.data:
            error = _("Votre navigateur n’a pas créé de clé d’accès. Il faut un navigateur récent, "
                      "avec JavaScript activé.")
        else:
            try:
                passkey = find_service(Passkeys).register(
                    tenant, member, _ceremony(tenant, "create", take=True), form.credential.data,
                    form.name.data)
            except PasskeyAlreadyRegistered:
                error = _("Cette clé d’accès est déjà enregistrée dans votre compte.")
            except PasskeyError as exc:
                _record_failure(tenant, exc, member.id)
                error = _("La clé d’accès n’a pas pu être enregistrée. Veuillez réessayer.")
            else:
                session[REAUTHENTICATED] = {k: v for k, v in (session.get(REAUTHENTICATED) or {}).items()
                                            if k != tenant.slug}
                _notify(tenant, member, "passkey_added", name=passkey.name)
                return redirect(url_for("accounts.account", changed="passkey-added"), 303)
    status = 400 if form.is_submitted() else 200
    return render("passkey_create.html", status=status, form=form, error=error)


@bp.route("/account/passkeys/<passkey_id>", methods=["GET", "POST"])
@_member_required
def manage(member: Account, passkey_id: str):
    """Rename a passkey, or go on to remove it."""
    passkey = _own_passkey(member, passkey_id)
    form = RenamePasskeyForm()
    if request.method == "GET":
        form.name.data = passkey.name
    if form.validate_on_submit():
        find_service(Passkeys).rename(passkey, form.name.data)
        return redirect(url_for("accounts.account", changed="passkey-renamed"), 303)
    status = 400 if form.is_submitted() else 200
    return render("passkey_manage.html", status=status, form=form, passkey=passkey,
                  remove_form=ConfirmForm())


@bp.post("/account/passkeys/<passkey_id>/remove")
@_member_required
def remove(member: Account, passkey_id: str):
    passkey = _own_passkey(member, passkey_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("passkeys.manage", passkey_id=passkey.id), 303)
    name = passkey.name
    find_service(Passkeys).remove(passkey)
    _notify(current_tenant(), member, "passkey_removed", name=name)
    return redirect(url_for("accounts.account", changed="passkey-removed"), 303)


@bp.post("/login/passkey/options")
@answers_json
def request_options():
    """Options for navigator.credentials.get(); a new challenge replaces the previous one."""
    tenant = current_tenant()
    ceremony, options = find_service(Passkeys).authentication_options(tenant, _ceremony(tenant, "get"))
    _keep_ceremony(tenant, "get", ceremony)
    return jsonify(options)


@bp.post("/login/passkey")
def sign_in():
    """"Me connecter en 1 clic": the passkey alone proves the member (acr phr)."""
    tenant = current_tenant()
    form = PasskeySignInForm()
    interaction_id = form.interaction.data or None
    interaction = sign_in_state.required_interaction(tenant, interaction_id)
    limiter = RateLimiter(services().store, ratelimit.PASSKEY_PER_IP)
    ip = request.remote_addr or "?"
    status = 400
    if not form.validate_on_submit():
        error = _("La connexion par clé d’accès n’a pas abouti. Réessayez, ou connectez-vous avec "
                  "votre mot de passe.")
    else:
        # Counted before the check (parallel attempts cannot overrun it); a success gives it back.
        limiter.consume(ip)
        try:
            passkey, account = find_service(Passkeys).authenticate(
                tenant, _ceremony(tenant, "get", take=True), form.credential.data,
                SignInContext(ip=ip, user_agent=request.user_agent.string,
                              locale=str(get_locale())))
        except PasskeyError as exc:
            _record_failure(tenant, exc)
            error, status = _sign_in_error(exc)
        else:
            limiter.refund(ip)
            return finish_sign_in(tenant, account, amr=[passkey.key_kind, "user"], acr=ACR_PASSKEY,
                                  interaction_id=interaction.id if interaction else None)
    return render("login.html", status=status, form=LoginForm(interaction=interaction_id),
                  error=error, interaction=interaction)


def _sign_in_error(exc: PasskeyError) -> tuple[str, int]:
    if isinstance(exc, CeremonyExpired):
        return _("La demande a expiré. Réessayez « Me connecter en 1 clic »."), 400
    if isinstance(exc, UnknownPasskey):
        return _("Cette clé d’accès n’est pas enregistrée pour votre %(portal)s. Connectez-vous "
                 "avec votre mot de passe.", portal=current_tenant().portal_name), 401
    if isinstance(exc, PasskeyBlocked):
        return _("Cette clé d’accès est bloquée par sécurité. Connectez-vous avec votre mot de "
                 "passe, puis retirez-la de votre compte."), 401
    return _("La clé d’accès n’a pas pu être vérifiée. Réessayez, ou connectez-vous avec votre "
             "mot de passe."), 400

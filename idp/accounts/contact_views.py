"""Proving a new address with a code: change of mobile or email on the account page, and
the move of the login identifier to the email at sign-in (SPEC §6, §7).

Each change has two pages: one that takes the new address (and, on the account page,
the password again) and sends a code there, one that takes the code. Between them the
browser session holds the address and its code challenge, under ``CODE_STATE``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.accounts import services as accounts
from idp.accounts.authn import current_authentication, renew, session_account
from idp.accounts.codes import code_accepted
from idp.accounts.forms import ChangeEmailForm, ChangeMobileForm, ReceivedCodeForm, UpdateIdentifierForm
from idp.accounts.migration import is_legacy, migrate
from idp.accounts.models import Account
from idp.accounts.reauthentication import password_given_again
from idp.accounts.services import EndedSessions, change_email, email_in_use
from idp.channels.masking import mask_email, mask_phone
from idp.channels.services import Messages
from idp.errors import SignInExpired
from idp.extensions import current_tenant, db, find_service
from idp.identifiers import normalize_email
from idp.mfa.services import Challenge, ResendTooSoon
from idp.records import record
from idp.signin import state as sign_in_state
from idp.signin.completion import complete
from idp.signin.services import CodeSender
from idp.tenancy import Tenant
from idp.web.errors import resend_wait
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("contact", __name__)

CODE_STATE = "contact_code"


@dataclass(frozen=True)
class Change:
    """One kind of address change: where its code goes and what its pages say."""

    kind: str
    channel: str
    template: str
    title: str
    retry_endpoint: str


MOBILE = Change("mobile", "sms", "mobile_change", _l("Code reçu par SMS"), "contact.change_mobile")
EMAIL = Change("email", "email", "email_code", _l("Code reçu par e-mail"), "contact.change_email")
IDENTIFIER = Change("identifier", "email", "email_code", _l("Code reçu par e-mail"),
                    "contact.update_identifier")
CHANGES = {change.kind: change for change in (MOBILE, EMAIL, IDENTIFIER)}

EMAIL_TAKEN = _l("Cette adresse e-mail est déjà celle d’un autre compte. Choisissez-en une autre.")


def _send_code(tenant: Tenant, change: Change, account: Account, address: str, field) -> bool:
    """Send a code to ``address`` (``CodeSender``: its limits, its cooldown; it commits).
    Within the cooldown of the code sent a moment ago to the same address, nothing is sent and
    ``field``, the address's, says when a new one may be; False then. An address corrected
    since gets its code at once."""
    pending = _code_state(change.kind)
    previous = Challenge(**pending["challenge"]) if pending else None
    held = session.get(CODE_STATE)  # any change's code: its message is withdrawn if held back
    try:
        sent = find_service(CodeSender).send(
            tenant, challenge_subject=f"{change.kind}:{account.id}", limit_subject=account.id,
            channel=change.channel, recipient=address, template=change.template,
            ip=request.remote_addr or "?", previous=previous,
            new_recipient=pending is not None and pending.get("address") != address,
            replaces=held.get("message") if held else None)
    except ResendTooSoon as exc:
        field.errors = [resend_wait(exc.retry_after)]
        return False
    session[CODE_STATE] = {"kind": change.kind, "address": address,
                           "challenge": record(sent.challenge), "message": sent.message_id,
                           "replaced": pending["challenge"] if pending else None}
    return True


def _code_state(kind: str) -> dict | None:
    pending = session.get(CODE_STATE)
    return pending if pending and pending.get("kind") == kind else None


def _code_page(change: Change, endpoint: str, apply):
    """The code page of a change: ``apply(address)`` runs once the code is right."""
    tenant = current_tenant()
    pending = _code_state(change.kind)
    if pending is None:
        return redirect(url_for(change.retry_endpoint), 303)
    form = ReceivedCodeForm()
    if form.validate_on_submit() and code_accepted(tenant, pending, form.code):
        session.pop(CODE_STATE, None)
        return apply(pending["address"])
    shown = mask_phone(pending["address"]) if change.channel == "sms" else pending["address"]
    status = 400 if form.is_submitted() else 200
    return render("confirm_code.html", status=status, form=form, change=change, address=shown,
                  action=url_for(endpoint))


def _signed_in():
    return session_account(db(), current_tenant())


def _current_sid() -> str | None:
    """This browser's provider session, kept when a change of factor ends the others."""
    authentication = current_authentication(current_tenant())
    return authentication.sid if authentication else None


@bp.route("/account/mobile", methods=["GET", "POST"])
def change_mobile():
    """New mobile: the password again, then an SMS code to the new number."""
    signed_in = _signed_in()
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    member = signed_in[1]
    form = ChangeMobileForm()
    if (form.validate_on_submit() and password_given_again(member, form)
            and _send_code(current_tenant(), MOBILE, member, form.mobile.e164, form.mobile)):
        return redirect(url_for("contact.confirm_mobile"), 303)
    status = 400 if form.is_submitted() else 200
    return render("change_mobile.html", status=status, form=form)


def _apply_mobile(member: Account, number: str):
    tenant = current_tenant()
    accounts.change_mobile(db(), find_service(Messages), tenant, member, number, reason="change",
                           ended=find_service(EndedSessions), keep_sid=_current_sid())
    # A change of factor signed the account out everywhere else; this browser stays.
    renew(tenant, member)
    return redirect(url_for("accounts.account", changed="mobile"), 303)


def _apply_email(member: Account, address: str):
    tenant = current_tenant()
    # The code proved the mailbox is the member's: it may hear that the address is taken
    # (never by whom), whether it was already or since the code left.
    if email_in_use(db(), tenant, address, member):
        form = ChangeEmailForm()
        form.email.errors = [str(EMAIL_TAKEN)]
        return render("change_email.html", status=409, form=form)
    change_email(db(), find_service(Messages), tenant, member, address, reason="change",
                 ended=find_service(EndedSessions), keep_sid=_current_sid())
    renew(tenant, member)
    return redirect(url_for("accounts.account", changed="email"), 303)


def _account_code_page(change: Change, endpoint: str, apply):
    """The code page of an account-page change: ``apply(member, address)`` once it is right."""
    signed_in = _signed_in()
    if signed_in is None:
        return redirect(url_for("accounts.account"), 303)
    return _code_page(change, endpoint, lambda address: apply(signed_in[1], address))


@bp.route("/account/mobile/confirm", methods=["GET", "POST"])
def confirm_mobile():
    return _account_code_page(MOBILE, "contact.confirm_mobile", _apply_mobile)


@bp.route("/account/email", methods=["GET", "POST"], endpoint="change_email")
def change_email_page():
    """New email: the password again, then a code to the new address; the old one is told."""
    tenant = current_tenant()
    signed_in = _signed_in()
    if signed_in is None:
        return redirect(url_for("signin.login"), 303)
    member = signed_in[1]
    form = ChangeEmailForm()
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit() and password_given_again(member, form):
        address = normalize_email(form.email.data)
        if address == member.email:
            form.email.errors = [_("C’est déjà l’adresse e-mail de votre compte.")]
        else:
            # Whoever holds the address, a code goes there: this page does not tell which
            # addresses have an account. Only the holder of the mailbox learns it, at
            # confirmation (``_apply_email``).
            if _send_code(tenant, EMAIL, member, address, form.email):
                return redirect(url_for("contact.confirm_email"), 303)
    return render("change_email.html", status=status, form=form)


@bp.route("/account/email/confirm", methods=["GET", "POST"])
def confirm_email():
    return _account_code_page(EMAIL, "contact.confirm_email", _apply_email)


def _migrating() -> tuple[sign_in_state.Pending, Account]:
    """The pending sign-in of a legacy account that proved every factor (SPEC §7)."""
    tenant = current_tenant()
    state = sign_in_state.required_pending(tenant, proven=True)
    account = db().get(Account, state.account_id)
    if account is None or not account.is_active or not is_legacy(tenant, account):
        raise SignInExpired()
    return state, account


def _finish_migration(state: sign_in_state.Pending, account: Account, address: str):
    tenant = current_tenant()
    migrate(db(), find_service(Messages), tenant, account, address)
    return complete(tenant, account, amr=state.amr or [], acr=state.acr or "",
                    interaction_id=state.interaction)


@bp.route("/login/update-identifier", methods=["GET", "POST"])
def update_identifier():
    """The page "Mettre à jour mon identifiant": the email that replaces the member number."""
    tenant = current_tenant()
    state, account = _migrating()
    form = UpdateIdentifierForm()
    if request.method == "GET" and account.email:
        form.email.data = account.email
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        address = normalize_email(form.email.data)
        if email_in_use(db(), tenant, address, account):
            form.email.errors = [str(EMAIL_TAKEN)]
            status = 409
        elif address == account.email and "mail" in state.amr:
            # The sign-in's own code went to this very address: it is proven already.
            return _finish_migration(state, account, address)
        elif _send_code(tenant, IDENTIFIER, account, address, form.email):
            return redirect(url_for("contact.update_identifier_code"), 303)
    return render("update_identifier.html", status=status, form=form, account=account,
                  masked=mask_email(account.email) if account.email else None,
                  timing=sign_in_state.sign_in_time(tenant, None))


@bp.route("/login/update-identifier/code", methods=["GET", "POST"])
def update_identifier_code():
    tenant = current_tenant()
    state, account = _migrating()

    def apply(address: str):
        if email_in_use(db(), tenant, address, account):
            form = UpdateIdentifierForm()
            form.email.errors = [str(EMAIL_TAKEN)]
            return render("update_identifier.html", status=409, form=form, account=account,
                          masked=None)
        return _finish_migration(state, account, address)

    return _code_page(IDENTIFIER, "contact.update_identifier_code", apply)

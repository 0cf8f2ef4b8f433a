"""Recovery pages: forgot password, reset link, forgot identifier (SPEC §6)."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_babel import gettext as _

from idp import ratelimit
from idp.accounts.forms import ForgotPasswordForm, MemberNumberForm, MielIdentityForm, NewPasswordForm
from idp.accounts.passwords import PersonalData, password_errors
from idp.accounts.recovery import Recovery, ResetLinkInvalid
from idp.extensions import current_tenant, find_service, services
from idp.ratelimit import RateLimiter
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("recovery", __name__)


def _within_limit(subject: str, per_ip: ratelimit.Limit) -> bool:
    """Both the identifier's limit and the address's; past either, nothing is recorded and
    the page says the same (no enumeration)."""
    return (RateLimiter(services().store, per_ip).allow(request.remote_addr or "?")
            and RateLimiter(services().store, ratelimit.RECOVERY_PER_IDENTIFIER).allow(subject))


def _link_expired():
    message = _("Ce lien n’est plus valable : il a expiré ou a déjà servi. Demandez-en un "
                "nouveau depuis « Mot de passe oublié ».")
    return render("error.html", status=400, error_code="expired", message=message,
                  onward_url=url_for("recovery.forgot_password"))


def _asking(template: str, form):
    """A request's form, with its errors once sent (400)."""
    return render(template, status=400 if form.is_submitted() else 200, form=form, sent=False)


def _asked(sent_endpoint: str):
    """A request is recorded: its answer is a page of its own, which a reload does not send again."""
    return redirect(url_for(sent_endpoint), 303)


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    tenant = current_tenant()
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        identifier = form.identifier.data.strip()
        # Recorded, whatever it names: the worker looks it up after the request (no
        # enumeration by time). Over the limit, nothing is, and the page says the same.
        if _within_limit(f"{tenant.slug}:{identifier.lower()}", ratelimit.RECOVERY_PER_IP):
            find_service(Recovery).request_reset(identifier)
        return _asked("recovery.forgot_password_sent")
    return _asking("forgot_password.html", form)


@bp.get("/forgot-password/sent")
def forgot_password_sent():
    return render("forgot_password.html", form=None, sent=True)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    tenant = current_tenant()
    service = find_service(Recovery)
    try:
        account = service.account_for_link(token)
    except ResetLinkInvalid:
        return _link_expired()
    form = NewPasswordForm()
    failed: list[str] = []
    if form.validate_on_submit():
        personal = PersonalData.of(account)
        failed = password_errors(form.password.data, tenant.password, personal)
        if not failed:
            try:
                service.reset(account, form.password.data, services().hasher, services().store)
            except ResetLinkInvalid:  # another use of the link came first
                return _link_expired()
            return redirect(url_for("recovery.password_reset_done"), 303)
        form.password.errors = [_("Ce mot de passe ne respecte pas toutes les règles ci-dessous.")]
    status = 400 if form.is_submitted() else 200
    return render("reset_password.html", status=status, form=form, failed=failed, token=token)


@bp.get("/reset-password/done")
def password_reset_done():
    return render("reset_done.html")


@bp.route("/forgot-identifier", methods=["GET", "POST"])
def forgot_identifier():
    """The identifier goes to the account's email, never to the page (SPEC §6, §7).

    Miel: prove who you are as at registration, the member number is sent. Where members
    sign in with their email: the member number is enough, since only that account's own
    address hears which address is the identifier. The page records what was typed; the
    worker matches it after the request (``Recovery.carry_out``).
    """
    tenant = current_tenant()
    form = MemberNumberForm() if tenant.logs_in_with_email else MielIdentityForm()
    if form.validate_on_submit():
        if tenant.logs_in_with_email:
            number = form.member_number.data.strip()
            if _within_limit(f"{tenant.slug}:number:{number}", ratelimit.IDENTIFIER_REMINDER_PER_IP):
                find_service(Recovery).request_login_email(number)
        elif _within_limit(f"{tenant.slug}:nir:{form.nir.parsed.value}",
                           ratelimit.IDENTIFIER_REMINDER_PER_IP):
            find_service(Recovery).request_member_number(
                form.nir.parsed.value, form.first_name.data, form.last_name.data,
                form.birth_date.parsed)
        return _asked("recovery.forgot_identifier_sent")
    return _asking("forgot_identifier.html", form)


@bp.get("/forgot-identifier/sent")
def forgot_identifier_sent():
    return render("forgot_identifier.html", form=None, sent=True)

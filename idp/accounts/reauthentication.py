"""The current password, asked again before a change a session alone may not make."""

from __future__ import annotations

from flask import abort, redirect, request, url_for
from flask_babel import gettext as _

from idp.accounts.authn import sign_out
from idp.accounts.models import Account
from idp.accounts.services import Reauthentication, TooManyPasswordChecks
from idp.extensions import current_tenant, find_service

# The sign-in page's ``ended`` argument when too many wrong passwords ended the session.
ENDED_BY_WRONG_PASSWORDS = "password-again"


def password_given_again(account: Account, form) -> bool:
    """Whether the form's ``current_password`` is the account's; a wrong one is said next to
    that field. Too many wrong ones (``Reauthentication``) sign the member out, and the
    sign-in page says why."""
    tenant = current_tenant()
    try:
        if find_service(Reauthentication).check(
                tenant, account, form.current_password.data or "", ip=request.remote_addr,
                user_agent=request.user_agent.string, page=request.endpoint):
            return True
    except TooManyPasswordChecks:
        sign_out(tenant, reason="reauth-locked")
        abort(redirect(url_for("signin.login", ended=ENDED_BY_WRONG_PASSWORDS), 303))
    form.current_password.errors = [_("Mot de passe actuel incorrect.")]
    return False

"""The current password, asked again before a change a session alone may not make."""

from __future__ import annotations

from flask_babel import gettext as _

from idp.accounts.models import Account
from idp.extensions import services


def password_given_again(account: Account, form) -> bool:
    """Whether the form's ``current_password`` is the account's; a wrong one is said next to
    that field."""
    if services().hasher.verify(account.password_hash, form.current_password.data).ok:
        return True
    form.current_password.errors = [_("Mot de passe actuel incorrect.")]
    return False

"""A code typed in a form, checked against its challenge, with what is wrong said on the field."""

from __future__ import annotations

from flask_babel import gettext as _

from idp.extensions import find_service
from idp.mfa.forms import wrong_code
from idp.mfa.services import Challenge, OtpExpired, OtpInvalid, OtpLocked
from idp.signin.services import CodeSender
from idp.tenancy import Tenant


def code_accepted(tenant: Tenant, pending: dict, field, expired: str | None = None) -> bool:
    """Check the code typed in ``field`` against the challenge of ``pending`` (a page's state:
    its ``challenge``, and the ``replaced`` one it took the place of, if any); say what is wrong
    on the field."""
    replaced = pending.get("replaced")
    try:
        find_service(CodeSender).check(tenant, Challenge(**pending["challenge"]), field.data,
                                       Challenge(**replaced) if replaced else None)
    except OtpInvalid as exc:
        field.errors = [wrong_code(exc)]
    except (OtpLocked, OtpExpired):
        field.errors = [expired or _("Ce code n’est plus valable. Demandez-en un nouveau.")]
    else:
        return True
    return False

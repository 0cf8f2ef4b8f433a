"""Information pages of each tenant: the accessibility statement (RGAA), and each version of the
legal notice and terms of use members accept."""

from __future__ import annotations

import re
from datetime import date

from flask import abort
from jinja2 import TemplateNotFound

from idp import ratelimit
from idp.extensions import current_tenant, services
from idp.signin.state import PENDING_TTL
from idp.web.rendering import render
from idp.web.tenants import tenant_blueprint

bp = tenant_blueprint("pages", __name__)

#: The axe-core release the browser tests check every page with; the statement names it.
#: tests/browser/axe/package.json pins the same version (a test compares them).
AXE_CORE_VERSION = "4.14.1"
#: The axe-core rule tags checked: WCAG 2.0 and 2.1, levels A and AA.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
#: Checked on top of those tags: minimum target size (WCAG 2.2, 2.5.8).
AXE_EXTRA_RULES = ("target-size",)


@bp.get("/accessibilite")
def accessibility():
    tenant = current_tenant()
    written = tenant.accessibility.statement_date
    return render("accessibility.html", axe_version=AXE_CORE_VERSION, axe_tags=AXE_TAGS,
                  axe_extra_rules=AXE_EXTRA_RULES,
                  statement_date=date.fromisoformat(written) if written else None,
                  sign_in_minutes=services().settings.interaction_ttl // 60,
                  after_password_minutes=PENDING_TTL // 60,
                  max_extensions=ratelimit.SIGN_IN_EXTENSIONS.limit,
                  idle_minutes=services().settings.session_idle_timeout // 60,
                  absolute_hours=services().settings.session_absolute_timeout // 3600)


# A terms version as tenant files name it ("2026-01"): nothing that could walk the template tree.
TERMS_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$")


@bp.get("/terms/<version>")
def terms(version: str):
    """One version of the legal notice and terms of use, as members accepted it.

    Each version's text is a file, ``templates/<tenant>/terms/<version>.html``, written in the
    brand's legal language (French) and never edited once published: a new text is a new
    version, named by ``terms_version`` in the tenant file.
    """
    tenant = current_tenant()
    if not TERMS_VERSION_RE.match(version):
        abort(404)
    try:
        return render("terms_page.html", text=f"{tenant.slug}/terms/{version}.html",
                      version=version, current=version == tenant.terms_version)
    except TemplateNotFound:
        abort(404)

"""Tenants in URLs: /<tenant>/… selects the issuer for every page and endpoint under it."""

from __future__ import annotations

from flask import Blueprint, g
from werkzeug.exceptions import NotFound

from idp.extensions import services


def bind_tenant(_endpoint: str | None, values: dict | None) -> None:
    """URL preprocessor for tenant blueprints: /<tenant>/… selects the issuer."""
    slug = (values or {}).pop("tenant", None)
    tenant = services().tenants.get(slug or "")
    if tenant is None:
        raise NotFound()
    g.tenant = tenant


def tenant_url_defaults(_endpoint: str, values: dict) -> None:
    if "tenant" not in values and g.get("tenant") is not None:
        values["tenant"] = g.tenant.slug


def tenant_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint whose URLs live under /<tenant>/ and resolve the tenant first."""
    blueprint = Blueprint(name, import_name, url_prefix="/<tenant>")
    blueprint.url_value_preprocessor(bind_tenant)
    blueprint.url_defaults(tenant_url_defaults)
    return blueprint

"""Member identity provider: an OpenID Connect provider with one issuer per brand.

Importing the package is cheap: the application (Flask, SQLAlchemy, every
blueprint) is imported only when ``create_app`` is called, so that the `idp`
command answers ``--help`` without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idp.web.transactions import Provider


def create_app(overrides: dict[str, Any] | None = None) -> Provider:
    """Build the provider. ``overrides`` take precedence over files and environment."""
    from idp.app import build_app  # noqa: PLC0415 - the application is loaded when first built

    return build_app(overrides)

"""The site icon at /favicon.ico, which browsers ask every origin for: the provider's and each
demo portal's. Cacheable, and answered without a session (no cookie is set or read)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, send_file

ICON = Path(__file__).resolve().parent / "static" / "favicon.ico"
# A week: the icon changes with a release at most.
MAX_AGE_SECONDS = 7 * 24 * 3600


def add_favicon(app: Flask) -> None:
    app.add_url_rule("/favicon.ico", "favicon", _favicon, methods=["GET"])


def _favicon() -> Response:
    response = send_file(ICON, mimetype="image/vnd.microsoft.icon", max_age=MAX_AGE_SECONDS)
    response.cache_control.public = True
    return response

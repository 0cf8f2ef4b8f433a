"""Security headers on every answer (SPEC §9).

The provider adds them to its own answers (``security_headers``). Requests refused before
they reach it carry the same ones, added by the reverse proxy (config/nginx/nginx.conf, which
repeats these values) to its own refusals and to those of the HTTP server (``idp.web.server``).
"""

from __future__ import annotations

from flask import Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Each unless the answer has its own.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
# Pages and API answers carry personal data or tokens unless a view says otherwise.
UNCACHED: tuple[tuple[str, str], ...] = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def security_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in SECURITY_HEADERS:
        headers.setdefault(name, value)
    if "Cache-Control" not in headers:
        for name, value in UNCACHED:
            headers[name] = value
    return response

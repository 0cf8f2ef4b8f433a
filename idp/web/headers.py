"""Security headers on every answer (SPEC §9).

The provider adds them to its own answers (``security_headers``). Requests refused before
they reach it carry the same ones, added by the reverse proxy (config/nginx/nginx.conf, which
repeats these values) to its own refusals and to those of the HTTP server (``idp.web.server``),
and by the demo's server to its own (``idp.demo.setup.DemoRequestHandler``).
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


# The same with each name in lower case, as it is looked up (RFC 9110 5.1: case-insensitive).
_SECURITY = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS)
_UNCACHED = tuple((name.lower(), name, value) for name, value in UNCACHED)


def security_headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    for lowered, name, value in _SECURITY:
        if lowered not in present:
            headers.add(name, value)
    if "cache-control" not in present:
        for lowered, name, value in _UNCACHED:
            if lowered in present:
                headers.set(name, value)
            else:
                headers.add(name, value)
    return response

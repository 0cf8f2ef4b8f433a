"""The input gate: what no view, form or protocol handler ever has to cope with.

One ``before_request`` hook, run before the CSRF check and any view, refuses
with a clear 400 (JSON for the API and the pages' scripts, a page otherwise) and before
anything is read from or written to a store:

- a ``Host`` that is not a host name, or that is not a loopback name on plain HTTP (the
  protocol needs TLS, RFC 6749 3.1 and 3.2; plain HTTP is for the loopback only, RFC 8252
  8.3; TLS ends at the proxy, which says so in ``X-Forwarded-Proto``);
- text no member types and no client sends, in the path, the query, the form or a JSON
  body: NUL and the other control characters, unpaired surrogates, U+FFFD (what bytes that
  are not UTF-8 decode to), non-characters, and the bidirectional overrides that make text
  read differently from what it holds;
- a request target (path and query) longer than 8 KiB (414); more header fields than a
  browser and the reverse proxy send, one longer than 8 KiB, or fields of more than 64 KiB
  in all (431). The HTTP server refuses only what is above these (idp.web.server), without
  the security headers; the provider's own answers have them;
- too many parameters, names or values longer than any field takes, a JSON body that is not
  shaped and sized as a form;
- on the protocol's endpoints, a parameter repeated (RFC 6749 3.1, 3.2) or holding what its
  grammar does not allow (RFC 6749 appendix A: identifiers and URIs are ASCII), or longer
  than the column that keeps it. The authorization endpoint answers most repeats itself, to
  the client (see ``ONCE_AT_AUTHORIZATION``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container, Sequence
from ipaddress import ip_address
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from idp.web.errors import wants_json
from idp.web.rendering import render

MAX_PARAMETERS = 100
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 8192
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 2
# A browser sends about twenty header fields and the reverse proxy adds five; the HTTP server
# refuses more than a hundred itself.
MAX_HEADER_FIELDS = 64
# Each field within MAX_VALUE_LENGTH, all of them within this: above the reverse proxy's four
# buffers of 8 KiB, far below the HTTP server's buffer for a request head (400 KiB).
MAX_HEADER_BYTES = 64 * 1024
# Above what a request line the reverse proxy lets through can hold (8,190 bytes), far below
# the HTTP server's limit (65,534 bytes).
MAX_TARGET_LENGTH = 8192
# The body's fields in the environ (PEP 3333); the same names after HTTP_ (a server may put
# them there too) are not header fields of their own (werkzeug's EnvironHeaders skips them).
_BODY_FIELDS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_BODY_FIELDS_AS_HTTP = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})

# Never typed, never sent by a client: controls (tab and line breaks aside), surrogates,
# U+FFFD, non-characters, bidirectional embeddings, overrides and isolates.
_NEVER = ("\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffd-\uffff"
          "\u202a-\u202e\u2066-\u2069")
REFUSED_TEXT = re.compile(f"[{_NEVER}]")
# A form may carry a tab or a line break (a pasted value); the path and the protocol's
# parameters never do.
REFUSED_IN_LINE = re.compile(f"[{_NEVER}\t\n\r]")

# RFC 6749 appendix A.
VSCHAR = re.compile(r"[\x20-\x7e]*")
NQSCHAR = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# RFC 3986 2: the characters a URI is made of (its grammar is the client's registration's).
URI = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")

# The protocol's parameters: their characters and, where a column keeps them, its size
# (idp/oidc/models.py). Others (nonce, login_hint, claims) are text, checked as any text.
PROTOCOL_PARAMETERS: dict[str, tuple[re.Pattern[str], int]] = {
    "client_id": (VSCHAR, 64),  # A.1; clients.client_id
    "client_secret": (VSCHAR, MAX_VALUE_LENGTH),  # A.2
    "response_type": (VSCHAR, MAX_VALUE_LENGTH),  # A.3
    "scope": (NQSCHAR, 500),  # A.4; authorization_codes.scope
    "state": (VSCHAR, MAX_VALUE_LENGTH),  # A.5
    "redirect_uri": (URI, 2000),  # A.6; authorization_codes.redirect_uri
    "post_logout_redirect_uri": (URI, 2000),
    "grant_type": (VSCHAR, MAX_VALUE_LENGTH),  # A.10
    "code": (VSCHAR, MAX_VALUE_LENGTH),  # A.11
    "access_token": (VSCHAR, MAX_VALUE_LENGTH),  # A.12
    "refresh_token": (VSCHAR, MAX_VALUE_LENGTH),  # A.17
    "token": (VSCHAR, MAX_VALUE_LENGTH),  # RFC 7009 2.1, RFC 7662 2.1
    "token_type_hint": (VSCHAR, MAX_VALUE_LENGTH),
    # RFC 7636 4.1, 4.2: 43 to 128 unreserved characters, checked by the grant (invalid_request
    # or invalid_grant), which keeps authorization_codes.code_challenge within its size.
    "code_verifier": (VSCHAR, MAX_VALUE_LENGTH),
    "code_challenge": (VSCHAR, MAX_VALUE_LENGTH),
    "code_challenge_method": (VSCHAR, MAX_VALUE_LENGTH),
    "client_assertion_type": (URI, MAX_VALUE_LENGTH),  # RFC 7521 4.2
    "client_assertion": (VSCHAR, MAX_VALUE_LENGTH),
    "id_token_hint": (VSCHAR, MAX_VALUE_LENGTH),  # a JWS in compact form
    "response_mode": (VSCHAR, MAX_VALUE_LENGTH),
    "prompt": (VSCHAR, MAX_VALUE_LENGTH),
    "display": (VSCHAR, MAX_VALUE_LENGTH),
    "max_age": (VSCHAR, MAX_VALUE_LENGTH),
    "acr_values": (VSCHAR, MAX_VALUE_LENGTH),
    "ui_locales": (VSCHAR, MAX_VALUE_LENGTH),
    "claims_locales": (VSCHAR, MAX_VALUE_LENGTH),
    "interaction": (VSCHAR, MAX_VALUE_LENGTH),
    "request_uri": (URI, MAX_VALUE_LENGTH),  # RFC 9126 2.2
}
PROTOCOL_BLUEPRINTS = frozenset({"oidc", "oidc_api"})
# The authorization endpoint refuses a repeated parameter itself, to the client's redirect URI,
# once it has validated the client and that URI (RFC 6749 4.1.2.1); only those that name them
# (a pushed request's reference stands for both, RFC 9126 4) are refused here, without it.
AUTHORIZATION_ENDPOINT = "oidc.authorize"
ONCE_AT_AUTHORIZATION = frozenset({"client_id", "redirect_uri", "request_uri"})
# Probes and scrapers reach a node directly on its private address, over plain HTTP; they
# take no input.
UNGATED_HOST_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.prometheus"})

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST = re.compile(
    rf"(?P<name>{_LABEL}(?:\.{_LABEL})*\.?|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>\d{{1,5}}))?")


class Refused(Exception):
    """Input the gate does not let through."""


def install(app: Flask) -> None:
    app.before_request(gate)


def gate() -> ResponseReturnValue | None:
    try:
        _check_host()
    except Refused:
        # No page: links cannot be built for a host that is not one.
        return jsonify(error="invalid_request", error_description="Invalid Host header."), 400
    if _target_too_long():
        return _refusal(414, _("La requête est trop volumineuse."))
    if _headers_too_large():
        return _refusal(431, _("La requête est trop volumineuse."))
    try:
        parameters = _check_text()
        _check_json()
        if request.endpoint == AUTHORIZATION_ENDPOINT:
            protocol_parameters(parameters, once=ONCE_AT_AUTHORIZATION)
        elif request.blueprint in PROTOCOL_BLUEPRINTS:
            protocol_parameters(parameters)
    except Refused:
        return _refusal()
    return None


def _refusal(status: int = 400, message: str | None = None) -> ResponseReturnValue:
    message = message or _("La requête n’est pas valide.")
    if wants_json():
        return jsonify(error="invalid_request", error_description=message), status
    return render("error.html", status=status, error_code="invalid_request", message=message,
                  protocol_error=request.blueprint in PROTOCOL_BLUEPRINTS)


def _target_too_long() -> bool:
    environ = request.environ
    return len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_TARGET_LENGTH


def _headers_too_large() -> bool:
    return headers_too_large(request.environ)


def headers_too_large(environ: dict[str, Any]) -> bool:
    """Whether the request's header fields, as its environ holds them, are too many or too
    large: each sized as ``name: value``, the name as long as its environ key less ``HTTP_``
    (the fields werkzeug's ``EnvironHeaders`` lists, without making their names)."""
    sizes = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key not in _BODY_FIELDS_AS_HTTP:
                sizes.append(len(key) - 3 + len(value))
        elif key in _BODY_FIELDS and value:
            sizes.append(len(key) + 2 + len(value))
    return (len(sizes) > MAX_HEADER_FIELDS or sum(sizes) > MAX_HEADER_BYTES
            or max(sizes, default=0) > MAX_VALUE_LENGTH)


def has_body(environ: dict[str, Any]) -> bool:
    """Whether the request says it carries a body (any sign of one: a type, a length, chunks)."""
    return bool(environ.get("CONTENT_TYPE") or environ.get("CONTENT_LENGTH")
                or environ.get("HTTP_TRANSFER_ENCODING"))


def passes_without_input(host: str, scheme: str, environ: dict[str, Any]) -> bool:
    """Whether a request with no parameters and no body, to an endpoint that takes none, passes
    the gate: its Host and its header fields."""
    return host_allowed(host, scheme) and not headers_too_large(environ)


def loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ip_address(hostname).is_loopback
    except ValueError:
        return False


def _check_host() -> None:
    if not host_allowed(request.host, request.scheme, ungated=request.endpoint in UNGATED_HOST_ENDPOINTS):
        raise Refused


@functools.lru_cache(maxsize=256)  # a node is reached under a few names
def host_allowed(host: str, scheme: str, *, ungated: bool = False) -> bool:
    """A host name (and port); on plain HTTP a loopback one unless the endpoint is ``ungated``."""
    match = HOST.fullmatch(host) if len(host) <= 255 else None
    if match is None or (match["port"] and not 0 < int(match["port"]) <= 65535):
        return False
    if scheme == "https" or ungated:
        return True
    hostname = match["ipv6"] or match["name"].rstrip(".")
    return loopback(hostname.lower())


def _parameters() -> list[tuple[str, str]]:
    # A request without a body has no form: not made, which would set up a stream to read.
    sources = (request.args, request.form) if has_body(request.environ) else (request.args,)
    return [(key, value) for source in sources for key, values in source.lists() for value in values]


def _check_text() -> list[tuple[str, str]]:
    """The path and the parameters' text; returns the parameters (query, then form)."""
    if len(request.path) > MAX_VALUE_LENGTH or REFUSED_IN_LINE.search(request.path):
        raise Refused
    parameters = _parameters()
    check_parameters(parameters)
    return parameters


def check_parameters(parameters: list[tuple[str, str]]) -> None:
    """The parameters' number, names and text; raises ``Refused``."""
    if len(parameters) > MAX_PARAMETERS:
        raise Refused
    for key, value in parameters:
        _check_name(key)
        if len(value) > MAX_VALUE_LENGTH or REFUSED_TEXT.search(value):
            raise Refused


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH or REFUSED_IN_LINE.search(name):
        raise Refused


def _check_json() -> None:
    """A JSON body is read as a form (Flask-WTF): it has a form's shape, an object whose values
    are strings or lists of strings, and a form's size."""
    if not (has_body(request.environ) and request.is_json):
        return
    data = request.get_data(cache=True)
    if not data:
        return
    # Measured before parsing: a parser recurses.
    if len(data) > MAX_JSON_BYTES or json_depth(data) > MAX_JSON_DEPTH:
        raise Refused
    parsed = request.get_json(silent=True)
    if not isinstance(parsed, dict) or len(parsed) > MAX_PARAMETERS:
        raise Refused
    for name, value in parsed.items():
        _check_name(name)
        values = value if isinstance(value, list) else [value]
        if len(values) > MAX_PARAMETERS or not all(isinstance(item, str) for item in values):
            raise Refused
        for item in values:
            if len(item) > MAX_VALUE_LENGTH or REFUSED_TEXT.search(item):
                raise Refused


def json_depth(data: bytes) -> int:
    """How deep a JSON document nests, read without parsing it (a parser recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def protocol_parameters(parameters: Sequence[Sequence[str]], *,
                        once: Container[str] | None = None) -> None:
    """The protocol's own rules on its parameters: each once (RFC 6749 3.1, 3.2), or only those
    named in ``once``; each of its grammar and size; raises ``Refused``."""
    seen: set[str] = set()
    for key, value in parameters:
        if key in seen and (once is None or key in once):
            raise Refused
        seen.add(key)
        if REFUSED_IN_LINE.search(value) and key != "claims":
            raise Refused
        rule = PROTOCOL_PARAMETERS.get(key)
        if rule is not None and (len(value) > rule[1] or not rule[0].fullmatch(value)):
            raise Refused

"""The protocol API's busiest requests, answered before the application: the metadata documents
(discovery, JWKS), UserInfo's reads, the token endpoint's grants, introspection and revocation.

Clients send these far more often than anything else, and none needs what the application does
for each request of pages and grants (request context, session, CSRF, locale, routing, hooks).
``Lane`` answers such a request at the WSGI level: a method its route takes, no query, no body
or (for a route taking a form) a form of a stated length, a Host, header fields and parameters
the input gate lets through (idp.web.gate's own checks). It answers with what the view would
have answered, plus the security headers, a request id, one log line and the request metrics.

A route answers only what it answers as its view does, and declines the rest (its answer is
None), which goes on to the application with its body as received: a CORS request, a token
UserInfo refuses with its challenge, a query string, a malformed parameter. A route that fails
(a database down) declines too, and the application raises its error again before any view
(``raise_failure``), for the one error boundary to answer (idp.web.errors).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import request
from werkzeug.formparser import FormDataParser
from werkzeug.http import HTTP_STATUS_CODES, generate_etag, parse_etags, parse_options_header, quote_etag
from werkzeug.wsgi import get_host

from idp import logs
from idp.web import gate
from idp.web.headers import SECURITY_HEADERS

# The environ key holding the error a route failed with, for the application to raise again.
FAILURE = "idp.lane_failure"

# The largest form the lane reads, far above a protocol request's; a larger one goes on to the
# application, which takes up to its MAX_CONTENT_LENGTH.
MAX_FORM_BYTES = 64 * 1024
FORM = "application/x-www-form-urlencoded"

Fields = Sequence[tuple[str, str]]
# Status, header fields and content, as the view answers (the lane adds the rest).
Answer = tuple[int, Fields, bytes]
# A request's parameters (its form's, the only ones the lane takes), in the order sent.
Parameters = list[tuple[str, str]]


@dataclass(frozen=True)
class Served:
    """A metadata document as served: its bytes, its strong entity tag and its header fields."""

    body: bytes
    tag: str  # unquoted
    headers: tuple[tuple[str, str], ...]
    # RFC 9110 15.4.5: a 304 carries the fields the 200 would have had, but no content.
    not_modified_headers: tuple[tuple[str, str], ...]

    def answer(self, if_none_match: str | None) -> Answer:
        """Status, header fields and content of a read: 304 when ``If-None-Match`` names this
        version (RFC 9110 13.1.2: compared weakly), else 200."""
        if if_none_match and parse_etags(if_none_match).contains_weak(self.tag):
            return 304, self.not_modified_headers, b""
        return 200, self.headers, self.body


@functools.lru_cache(maxsize=64)
def served(document: bytes, max_age: int) -> Served:
    """The answer for ``document``, made once (the JWKS document changes only with the keys)."""
    tag = generate_etag(document)
    not_modified = (("Cache-Control", f"public, max-age={max_age}"), ("ETag", quote_etag(tag)),
                    # The CORS protocol (Fetch Standard): any origin may read it, without credentials.
                    ("Access-Control-Allow-Origin", "*"))
    return Served(document, tag, (("Content-Type", "application/json"), *not_modified),
                  not_modified)


@dataclass(frozen=True)
class Route:
    """What the lane answers at ``path`` (the view's ``endpoint``, of ``tenant``) for
    ``methods``: ``answer`` gives the view's answer to a request's environ and parameters, or
    None."""

    path: str
    endpoint: str
    tenant: str
    methods: frozenset[str]
    answer: Callable[[dict[str, Any], Parameters], Answer | None]
    #: Takes a form (``FORM``); otherwise no body at all.
    form: bool = False
    #: Answered from memory, waiting on nothing (the production server runs it in its event loop).
    from_memory: bool = False
    #: A cross-origin request (one with an ``Origin``) goes to the view, whose CORS fields are
    #: Flask-CORS's; the route's own answer has none.
    same_origin_only: bool = False


def document(path: str, endpoint: str, tenant: str, content: Callable[[], bytes], *,
             max_age: int) -> Route:
    """A metadata document's route: its current bytes (``content``), read with GET or HEAD."""

    def answer(environ: dict[str, Any], _parameters: Parameters) -> Answer:
        return served(content(), max_age).answer(environ.get("HTTP_IF_NONE_MATCH"))

    return Route(path, endpoint, tenant, frozenset({"GET", "HEAD"}), answer, from_memory=True)


class Lane:
    """WSGI middleware answering what its ``routes`` answer; everything else goes to ``app``."""

    def __init__(self, app: Callable[..., Any], routes: Iterable[Route], *, trusted_proxies: int):
        self.app = app
        self.routes = {route.path: route for route in routes}
        self.trusted_proxies = trusted_proxies

    def _route(self, environ: dict[str, Any]) -> Route | None:
        """The route of a request to one of the lane's paths that it may answer, if it is one: a
        method the route takes, no query, no body unless the route takes a form (which
        ``_read_form`` reads only if it is one of a stated length), and no ``Origin`` unless the
        route answers cross-origin requests."""
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if (route is None or environ.get("REQUEST_METHOD") not in route.methods
                or environ.get("QUERY_STRING") or (not route.form and gate.has_body(environ))
                or (route.same_origin_only and "HTTP_ORIGIN" in environ)):
            return None
        return route

    def from_memory(self, environ: dict[str, Any]) -> bool:
        """Whether ``environ`` is answered from memory, with no I/O, unless its Host or header
        fields are refused (the gate's answer, made without I/O too)."""
        route = self._route(environ)
        return route is not None and route.from_memory

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        route = self._route(environ)
        if route is None or not gate.passes_without_input(
                get_host(environ), environ.get("wsgi.url_scheme", "http"), environ):
            return self.app(environ, start_response)
        parameters = _read_form(environ) if route.form else []
        if parameters is None:
            return self.app(environ, start_response)
        try:
            gate.check_parameters(parameters)
            gate.protocol_parameters(parameters)
        except gate.Refused:
            return self.app(environ, start_response)
        try:
            answer = route.answer(environ, parameters)
        except Exception as error:  # the application's error boundary answers it
            environ[FAILURE] = error
            answer = None
        if answer is None:
            return self.app(environ, start_response)
        status, fields, body = answer
        method = environ["REQUEST_METHOD"]
        incoming = environ.get("HTTP_X_REQUEST_ID", "") if self.trusted_proxies else ""
        request_id = logs.request_id(incoming)
        # RFC 9110 8.6: no length for a 304, which has no content.
        length = (("Content-Length", str(len(body))),) if status != 304 else ()
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", [
            *fields, *length, *SECURITY_HEADERS, (logs.REQUEST_ID_HEADER, request_id)])
        logs.log_request(route.endpoint, status, time.perf_counter() - started, {
            "request_id": request_id, "tenant": route.tenant, "method": method, "path": route.path})
        return [] if method == "HEAD" else [body]


def _form_length(environ: dict[str, Any]) -> int | None:
    """The length of a form the lane reads: its type is ``FORM``, its length stated and within
    ``MAX_FORM_BYTES``."""
    length = environ.get("CONTENT_LENGTH", "")
    if (environ.get("HTTP_TRANSFER_ENCODING") or not (length.isascii() and length.isdigit())
            or int(length) > MAX_FORM_BYTES
            or parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower() != FORM):
        return None
    return int(length)


def _read_form(environ: dict[str, Any]) -> Parameters | None:
    """The form's parameters, read as the application reads them (werkzeug's parser, which
    takes a body that is not UTF-8 as no form). The body is put back for the application, which
    may answer the request instead. None if the body is not a form the lane reads, or came
    short of its length."""
    length = _form_length(environ)
    if length is None:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    if len(body) != length:
        return None
    _stream, form, _files = FormDataParser(silent=True).parse(io.BytesIO(body), FORM, length)
    return list(form.items(multi=True))


def raise_failure() -> None:
    """The application's first hook: the error a route failed with, raised again for the error
    boundary (the request went on to the application when its route failed)."""
    failure = request.environ.pop(FAILURE, None)
    if failure is not None:
        raise failure

"""Metadata documents (discovery, JWKS) served from their bytes, before the application.

A client reads them far more often than anything else, and each answer is the same bytes
until a release or a key rotation. ``Documents`` answers a plain read of one (GET or HEAD,
no query, no body, a request the input gate lets through) at the WSGI level, with what the
view would have answered: the same bytes, entity tag and header fields (``served``), the
security headers, a request id, one log line and the request metrics. None of the
per-request work of pages and grants (request context, session, CSRF, locale, routing)
runs for it. Any other request to those paths (a CORS preflight, a query string, a Host
the gate refuses) goes on to the application, whose views answer it from ``served`` too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES, generate_etag, parse_etags, quote_etag
from werkzeug.wsgi import get_host

from idp import logs
from idp.web import gate
from idp.web.headers import SECURITY_HEADERS


@dataclass(frozen=True)
class Served:
    """A metadata document as served: its bytes, its strong entity tag and its header fields."""

    body: bytes
    tag: str  # unquoted
    headers: tuple[tuple[str, str], ...]
    # RFC 9110 15.4.5: a 304 carries the fields the 200 would have had, but no content.
    not_modified_headers: tuple[tuple[str, str], ...]

    def answer(self, if_none_match: str | None) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
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
class Document:
    """A document at ``path``: the view's ``endpoint``, its tenant, and its current bytes."""

    path: str
    endpoint: str
    tenant: str
    content: Callable[[], bytes]


class Documents:
    """WSGI middleware answering plain reads of ``documents``; everything else goes to ``app``."""

    def __init__(self, app: Callable[..., Any], documents: Iterable[Document], *, max_age: int,
                 trusted_proxies: int):
        self.app = app
        self.documents = {document.path: document for document in documents}
        self.max_age = max_age
        self.trusted_proxies = trusted_proxies

    def plain_read(self, environ: dict[str, Any]) -> bool:
        """Whether ``environ`` is a plain read of a document: answered from memory, with no I/O,
        unless its Host or header fields are refused (the gate's answer, made without I/O too)."""
        return (environ.get("PATH_INFO", "") in self.documents
                and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
                and not environ.get("QUERY_STRING") and not gate.has_body(environ))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        if not (self.plain_read(environ) and gate.passes_without_input(
                get_host(environ), environ.get("wsgi.url_scheme", "http"), environ)):
            return self.app(environ, start_response)
        document = self.documents[environ["PATH_INFO"]]
        method = environ["REQUEST_METHOD"]
        status, fields, body = served(document.content(), self.max_age).answer(
            environ.get("HTTP_IF_NONE_MATCH"))
        incoming = environ.get("HTTP_X_REQUEST_ID", "") if self.trusted_proxies else ""
        request_id = logs.request_id(incoming)
        # RFC 9110 8.6: no length for a 304, which has no content.
        length = (("Content-Length", str(len(body))),) if status == 200 else ()
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", [
            *fields, *length, *SECURITY_HEADERS, (logs.REQUEST_ID_HEADER, request_id)])
        logs.log_request(document.endpoint, status, time.perf_counter() - started, {
            "request_id": request_id, "tenant": document.tenant, "method": method,
            "path": document.path})
        return [] if method == "HEAD" else [body]

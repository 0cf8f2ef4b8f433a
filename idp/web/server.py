"""Gunicorn's worker for the provider (config/gunicorn.conf.py names it).

Gunicorn answers some requests itself, before the provider sees them: a request line, a
header field or a number of header fields over its limits (414, 431), a request it cannot
parse (400). Those answers carry the provider's security headers too.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.sync import SyncWorker

from idp.web.headers import SECURITY_HEADERS, UNCACHED

_HEADER_LINES = "".join(f"{name}: {value}\r\n"
                        for name, value in (*SECURITY_HEADERS, *UNCACHED)).encode("latin-1")


class _WithSecurityHeaders:
    """The client's socket, through which an answer written whole gets the headers after its
    status line."""

    def __init__(self, sock: Any):
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        status_line, crlf, rest = data.partition(b"\r\n")
        if crlf and status_line.startswith(b"HTTP/"):
            data = status_line + crlf + _HEADER_LINES + rest
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ProviderWorker(SyncWorker):
    """Gunicorn's sync worker, whose own answers carry the security headers."""

    def handle_error(self, req, client, addr, exc):
        super().handle_error(req, _WithSecurityHeaders(client), addr, exc)

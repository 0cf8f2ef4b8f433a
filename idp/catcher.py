"""A message catcher for trials: what the provider would hand to an SMS gateway (or any other
channel that POSTs JSON) is kept in memory and shown, instead of reaching anyone.

``POST /<channel>`` with a JSON body (``/sms`` receives ``{"to", "from", "text"}`` as
``HttpSmsSender`` posts it; any other channel name works the same way) answers 202 and keeps
the message; ``GET /`` shows every message kept, newest first; ``GET /<channel>.json`` gives a
channel's messages as JSON. Standard library only: it runs with no application, database or
network beyond its own port. Not for production: anyone who reaches the port reads the codes.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A channel is a path segment: /sms, /letter, /webhook…
CHANNEL = re.compile(r"^/([a-z][a-z0-9-]{0,31})$")
CHANNEL_JSON = re.compile(r"^/([a-z][a-z0-9-]{0,31})\.json$")
MAX_BODY_BYTES = 256 * 1024
# Kept per catcher, oldest dropped first: a trial, not an archive.
MAX_MESSAGES = 500


class Catcher:
    """The messages received, newest last, at most ``MAX_MESSAGES``."""

    def __init__(self, keep: int = MAX_MESSAGES):
        self._messages: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._count = 0

    def keep(self, channel: str, body: Any) -> dict[str, Any]:
        with self._lock:
            self._count += 1
            message = {"id": self._count, "channel": channel,
                       "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
                       "body": body}
            self._messages.append(message)
            return message

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in reversed(self._messages) if channel in (None, m["channel"])]


def summary(message: dict[str, Any]) -> str:
    """One line for the catcher's log: the channel, and the SMS's fields when they are there."""
    body = message["body"]
    if isinstance(body, dict) and {"to", "text"} <= set(body):
        return f"#{message['id']} {message['channel']} to {body['to']}: {body['text']}"
    return f"#{message['id']} {message['channel']}: {json.dumps(body, ensure_ascii=False)[:200]}"


def make_server(host: str, port: int, catcher: Catcher, echo=print) -> ThreadingHTTPServer:
    """The catcher's HTTP server, bound to ``host:port``; ``echo`` gets one line per message."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "idp-catcher"

        def do_POST(self) -> None:
            match = CHANNEL.match(self.path)
            if match is None:
                self._answer(404, {"error": "POST to /<channel>, e.g. /sms"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, {"error": f"at most {MAX_BODY_BYTES} bytes"})
                return
            if self.headers.get_content_type() != "application/json":
                self._answer(415, {"error": "send application/json"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (UnicodeDecodeError, ValueError, RecursionError):
                self._answer(400, {"error": "the body is not JSON"})
                return
            message = catcher.keep(match[1], body)
            echo(summary(message))
            self._answer(202, {"id": message["id"]})

        def do_GET(self) -> None:
            if self.path == "/":
                self._page()
            elif (match := CHANNEL_JSON.match(self.path)) is not None:
                self._answer(200, catcher.messages(match[1]))
            elif self.path == "/healthz":
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"error": "GET / or /<channel>.json"})

        def _page(self) -> None:
            rows = "".join(
                f"<tr><td>{m['id']}</td><td>{html.escape(m['received_at'])}</td>"
                f"<td>{html.escape(m['channel'])}</td>"
                f"<td><pre>{html.escape(json.dumps(m['body'], ensure_ascii=False, indent=2))}"
                "</pre></td></tr>"
                for m in catcher.messages())
            page = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">"
                    "<title>Caught messages</title><h1>Caught messages</h1>"
                    "<p>Newest first. Nothing here reached anyone.</p>"
                    "<table><thead><tr><th>#</th><th>Received (UTC)</th><th>Channel</th>"
                    f"<th>Body</th></tr></thead><tbody>{rows}</tbody></table></html>")
            self._send(200, "text/html; charset=utf-8", page.encode())

        def _answer(self, status: int, payload: Any) -> None:
            self._send(status, "application/json", json.dumps(payload, ensure_ascii=False).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per message caught is the log (echo)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server

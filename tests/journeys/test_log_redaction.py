"""Link tokens, codes and token parameters never reach a log, found by their shape: also when
the link is mistyped and matches no route, and in the request lines of werkzeug's server
(the demo's), which log whole URLs (SPEC §11: logs without secrets)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from idp.logs import LIBRARY_LEVELS, JsonFormatter
from tests.conftest import serving

SECRETS = ("Zx81linkSecretA", "Zx81linkSecretB", "Zx81codeSecretC", "Zx81tokenSecretD")


@pytest.fixture
def json_logs():
    """Every record at DEBUG, formatted as production does while it is emitted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "werkzeug", *LIBRARY_LEVELS)}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _requests(stream: io.StringIO) -> list[dict]:
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [record for record in records if record["logger"] == "idp.request"]


@pytest.mark.parametrize(("url", "logged"), [
    # A trailing slash: no route matches, the token is there all the same.
    (f"/malakoff/reset-password/{SECRETS[0]}/", "/malakoff/reset-password/[redacted]/"),
    (f"/miel/activate/{SECRETS[1]}/more", "/miel/activate/[redacted]/more"),
    (f"/miel/reset-password/{SECRETS[0]}", "/miel/reset-password/[redacted]"),
    (f"/miel/activate/{SECRETS[1]}?code={SECRETS[2]}&token={SECRETS[3]}",
     "/miel/activate/[redacted]"),
])
def test_link_tokens_are_redacted_whether_or_not_a_route_matches(client, json_logs, url, logged):
    client.get(url)
    [request] = _requests(json_logs)
    assert request["path"] == logged
    text = json_logs.getvalue()
    assert [secret for secret in SECRETS if secret in text] == []


def test_messages_logged_by_anyone_lose_codes_and_tokens(json_logs):
    logging.getLogger("idp.somewhere").warning(
        "redirecting to https://rp.example.org/cb?code=%s&state=s (reset /malakoff/reset-password/%s)",
        SECRETS[2], SECRETS[0])
    text = json_logs.getvalue()
    assert [secret for secret in SECRETS if secret in text] == []
    assert "code=[redacted]&state=s" in text


def test_pushed_request_references_are_redacted(json_logs):
    logging.getLogger("idp.somewhere").warning(
        "sent to /malakoff/authorize?client_id=rp&request_uri=urn:ietf:params:oauth:request_uri:%s",
        SECRETS[3])
    text = json_logs.getvalue()
    assert SECRETS[3] not in text
    assert "client_id=rp&request_uri=[redacted]" in text


def test_werkzeug_request_lines_are_redacted_before_any_handler(app, json_logs, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    with serving(app) as port:
        for path in (f"/malakoff/reset-password/{SECRETS[0]}/?code={SECRETS[2]}",
                     f"/miel/activate/{SECRETS[1]}?token={SECRETS[3]}"):
            requests.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False, timeout=10)
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert any("/malakoff/reset-password/[redacted]/ HTTP/1.1" in line for line in lines), lines
    # What werkzeug's own handler would print, and what the JSON lines hold.
    assert [secret for secret in SECRETS if secret in "\n".join(lines)] == []
    assert [secret for secret in SECRETS if secret in json_logs.getvalue()] == []

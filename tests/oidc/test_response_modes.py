"""Response modes: query, fragment and form_post (OAuth 2.0 Form Post Response Mode)."""

from __future__ import annotations

import re

from tests.flows import query


def test_fragment_mode_puts_the_response_in_the_fragment(flow):
    response = flow.sign_in(response_mode="fragment")
    location = response.headers["Location"]
    assert "#" in location and "?" not in location.split("#")[0]
    params = query(location)
    assert params["code"] and params["iss"] == "http://localhost/malakoff"


def _hidden_inputs(html: bytes) -> dict[str, str]:
    return dict(re.findall(rb'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def test_form_post_mode_posts_code_state_and_iss(flow):
    response = flow.sign_in(response_mode="form_post")
    assert response.status_code == 200
    assert b'action="https://rp.example.org/callback"' in response.data
    inputs = _hidden_inputs(response.data)
    assert set(inputs) == {b"code", b"state", b"iss"}
    assert inputs[b"iss"] == b"http://localhost/malakoff"
    assert response.headers["Cache-Control"] == "no-store"
    # The auto-submit script is a file of ours, allowed by the CSP; no inline script.
    assert b"<script src=" in response.data and b"onload" not in response.data
    token = flow.token(inputs[b"code"].decode())
    assert token.status_code == 200


def test_form_post_mode_also_carries_errors(flow):
    response = flow.authorize(response_mode="form_post", prompt="none")
    inputs = _hidden_inputs(response.data)
    assert inputs[b"error"] == b"login_required"
    assert inputs[b"iss"] == b"http://localhost/malakoff"


def test_form_post_escapes_values(flow):
    response = flow.authorize(response_mode="form_post", prompt="none", state='"><script>x</script>')
    assert b"<script>x</script>" not in response.data
    assert b"&#34;&gt;&lt;script&gt;" in response.data or b"&quot;&gt;&lt;script&gt;" in response.data


def test_post_authorization_answers_303(flow):
    response = flow.authorize(method="POST", prompt="none")
    assert response.status_code == 303

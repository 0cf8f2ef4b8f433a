"""The input gate: hostile input gets a clear 4xx answer and changes nothing.

One case per cause of a server error found by fuzzing, then property-based tests that throw
random bytes, Unicode classes, lengths and repeated parameters and headers at every endpoint
and form.
"""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from idp.oidc.models import AuthorizationCode
from tests.flows import csrf_token, query

TOKEN_ENDPOINTS = ["/malakoff/token", "/malakoff/introspect", "/malakoff/revoke"]


def basic(raw: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_clean(response, status: int | tuple[int, ...] = 400) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.data[:500])
    assert b"Traceback" not in response.data


# --- one case per cause found -------------------------------------------------------------

@pytest.mark.parametrize("redirect_uri", [
    'https://rp.example.org/"callback',
    "https://rp.example.org/call\\back",
    "https://rp.example.org/caf\u00e9",
    "https://rp.example.org/\u202ekcabllac",
    "https://rp.example.org/call\u200bback",
])
def test_an_unregistered_redirect_uri_with_unusual_characters_is_a_page(flow, redirect_uri):
    for method in ("GET", "POST"):
        response = flow.authorize(method, redirect_uri=redirect_uri)
        assert_clean(response)
        assert "Location" not in response.headers
        assert b"invalid_request" in response.data


def _hint_with_kid(kid: str) -> str:
    key = RSAKey.generate_key(2048)
    return jwt.encode({"alg": "RS256", "kid": kid}, {"iss": "x", "sub": "y"}, key)


@pytest.mark.parametrize("kid", ["cl\u00e9", "\u202ekid", "k\u200bid"])
def test_an_id_token_hint_with_a_non_ascii_kid_is_refused(flow, client, kid):
    hint = _hint_with_kid(kid)
    response = flow.authorize(id_token_hint=hint)
    assert response.status_code in (302, 303), response.data[:500]
    assert query(response.headers["Location"])["error"] == "invalid_request"
    response = client.get("/malakoff/logout", query_string={"id_token_hint": hint})
    assert_clean(response)
    assert b"invalid_request" in response.data


@pytest.mark.parametrize("path", ["/malakoff/logout", "/malakoff/authorize"])
def test_a_nul_byte_in_client_id_is_refused(client, path):
    response = client.get(path, query_string={"client_id": "a\x00b", "response_type": "code",
                                              "redirect_uri": "https://rp.example.org/callback"})
    assert_clean(response)


@pytest.mark.parametrize("path", TOKEN_ENDPOINTS)
@pytest.mark.parametrize("raw", [b"a\x00b:secret", b"client:se\x00cret", b"%00:secret",
                                 b"\xff\xfe:secret", b"client:\xe9t\xe9"])
def test_basic_credentials_that_do_not_decode_are_invalid_client(client, rp, path, raw):
    response = client.post(path, headers=basic(raw),
                           data={"grant_type": "authorization_code", "code": "x", "token": "x"})
    assert_clean(response, 401)
    assert response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", TOKEN_ENDPOINTS)
def test_basic_credentials_sent_twice_are_refused(client, rp, path):
    header = basic(f"{rp.client_id}:{rp.secret}".encode())["Authorization"]
    response = client.post(path, headers=[("Authorization", header), ("Authorization", header)],
                           data={"grant_type": "authorization_code", "code": "x", "token": "x"})
    assert_clean(response, 401)
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("path", ["/malakoff/login", "/malakoff/authorize", "/malakoff/logout",
                                  "/malakoff/.well-known/openid-configuration"])
@pytest.mark.parametrize("host", ["idp.example.org", "10.0.0.5:8000", "\u00e9.example", "a b",
                                  "[::1", "h:99999", "x" * 300])
def test_a_host_that_is_not_loopback_on_plain_http_is_refused(client, path, host):
    assert_clean(client.get(path, headers={"Host": host}))


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8000", "[::1]:8000"])
def test_loopback_hosts_are_served_on_plain_http(client, host):
    assert client.get("/malakoff/login", headers={"Host": host}).status_code == 200


def test_a_host_behind_the_tls_proxy_is_served(client):
    response = client.get("/malakoff/login", headers={"Host": "idp.example.org"},
                          base_url="https://idp.example.org")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_on_a_private_address(client, path):
    assert client.get(path, headers={"Host": "10.0.0.5:8000"}).status_code == 200


def test_a_nonce_longer_than_its_column_is_refused_before_the_sign_in(flow, db):
    response = flow.authorize(nonce="n" * 501)
    assert response.status_code in (302, 303), response.data[:500]
    assert query(response.headers["Location"])["error"] == "invalid_request"
    assert "/login" not in response.headers["Location"]
    assert db.scalar(select(func.count()).select_from(AuthorizationCode)) == 0


def test_a_nonce_of_its_column_length_signs_in(flow):
    claims = flow.id_token_claims(flow.tokens(nonce="n" * 500)["id_token"])
    assert claims["nonce"] == "n" * 500


@pytest.mark.parametrize("path", ["/malakoff/login", "/malakoff/login/passkey",
                                  "/malakoff/forgot-password"])
def test_a_deeply_nested_json_body_is_refused(client, path):
    page = client.get("/malakoff/login")
    body = "[" * 900 + "]" * 900
    response = client.post(path, data=body, content_type="application/json",
                           headers={"X-CSRFToken": csrf_token(page.data)})
    assert_clean(response)


def test_a_nul_byte_in_the_sign_in_identifier_is_refused(client, member):
    page = client.get("/malakoff/login")
    response = client.post("/malakoff/login", data={
        "identifier": member.email + "\x00", "password": "x", "csrf_token": csrf_token(page.data)})
    assert_clean(response)


def test_json_bodies_are_parsed_once_and_bounded(client):
    page = client.get("/malakoff/login")
    body = json.dumps({"identifier": "a" * 10})
    response = client.post("/malakoff/login", data=body, content_type="application/json",
                           headers={"X-CSRFToken": csrf_token(page.data)})
    assert response.status_code < 500

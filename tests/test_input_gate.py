"""The input gate: hostile input gets a clear 4xx answer and changes nothing.

One case per cause of a server error found by fuzzing, then property-based tests that throw
random bytes, Unicode classes, lengths and repeated parameters and headers at every endpoint
and form.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from idp.oidc.models import AuthorizationCode
from idp.web import gate
from tests.conftest import DATABASE_URL
from tests.flows import Flow, csrf_token, query
from tests.journeys.test_frozen_dependencies import snapshot

TOKEN_ENDPOINTS = ["/malakoff/token", "/malakoff/introspect", "/malakoff/revoke", "/malakoff/par"]


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


# --- properties: whatever arrives, a clear answer --------------------------------------------

PROTOCOL = {
    ("GET", "/malakoff/authorize"): ["client_id", "redirect_uri", "response_type", "scope", "state",
                                     "nonce", "code_challenge", "code_challenge_method", "prompt",
                                     "max_age", "id_token_hint", "claims", "login_hint",
                                     "acr_values", "ui_locales", "response_mode", "request_uri"],
    ("POST", "/malakoff/authorize"): ["client_id", "redirect_uri", "response_type", "scope", "nonce",
                                      "state", "code_challenge", "code_challenge_method", "claims"],
    ("POST", "/malakoff/token"): ["grant_type", "code", "redirect_uri", "code_verifier", "client_id",
                                  "client_secret", "refresh_token", "client_assertion",
                                  "client_assertion_type", "scope"],
    ("GET", "/malakoff/userinfo"): ["access_token"],
    ("POST", "/malakoff/userinfo"): ["access_token"],
    ("POST", "/malakoff/introspect"): ["token", "token_type_hint", "client_id", "client_secret"],
    ("POST", "/malakoff/revoke"): ["token", "token_type_hint", "client_id", "client_secret"],
    ("POST", "/malakoff/par"): ["client_id", "client_secret", "redirect_uri", "response_type", "scope",
                                "state", "nonce", "code_challenge", "code_challenge_method", "claims",
                                "request_uri", "request", "client_assertion", "client_assertion_type"],
    ("GET", "/malakoff/authorize/restart"): ["token"],
    ("GET", "/malakoff/logout"): ["id_token_hint", "client_id", "post_logout_redirect_uri", "state",
                                  "ui_locales"],
    ("POST", "/malakoff/logout"): ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"],
}
# Each form with values that pass its own checks, so that a hostile value in one field reaches
# the service behind it.
FORMS = {
    "/malakoff/login": {"identifier": "jeanne@example.org", "password": "Secret-2026!"},
    "/malakoff/register": {"member_number": "23456789", "first_name": "Jean", "last_name": "Dupont",
                           "birth_date": "23/11/1949", "email": "jean@example.org",
                           "email_confirm": "jean@example.org", "mobile": "0612345678",
                           "accept_terms": "y"},
    "/miel/register": {"nir": "262082A00403607", "birth_date": "30/08/1962", "birth_department": "2A",
                       "last_name": "N'Diaye", "first_name": "Françoise"},
    "/malakoff/forgot-password": {"identifier": "jeanne@example.org"},
    "/miel/forgot-identifier": {"nir": "262082A00403607", "birth_date": "30/08/1962",
                                "birth_department": "2A", "last_name": "N'Diaye",
                                "first_name": "Françoise"},
    "/malakoff/login/code": {"channel": "email"},
    "/malakoff/login/code/verify": {"code": "123456", "remember": "y"},
    "/malakoff/register/code": {"code": "123456"},
}
# What fuzzers send: controls, NUL, invisible and right-to-left characters, what breaks quoting,
# what is not UTF-8 (an escaped surrogate among them).
NASTY = [b"\x00", b"\x1b", b"\x7f", "\u202e".encode(), "\u200b".encode(), "\ufeff".encode(),
         "\u2066".encode(), b"\xed\xa0\x80", b"\xff", b"\xc3", b'"', b"\\", b"'", b"%", b"&", b"=",
         b"+", b" ", "\u00e9".encode(), "\U0001f600".encode(), b"\r\n", b"\t"]

settings_ = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def texts() -> st.SearchStrategy[bytes]:
    unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).map(str.encode)
    pieces = st.lists(st.one_of(st.sampled_from(NASTY), unicode_text, st.binary(max_size=8)),
                      max_size=6).map(b"".join)
    long = st.tuples(st.sampled_from([b"a", b"\xc3\xa9", b"\x00", b"%"]),
                     st.sampled_from([64, 65, 500, 501, 2001, 8193])).map(lambda t: t[0] * t[1])
    return st.one_of(pieces, long)


def pairs(names: list[str]) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    name = st.one_of(st.sampled_from(names).map(str.encode), texts())
    # Repeats come from drawing the same name twice.
    return st.lists(st.tuples(name, texts()), max_size=8)


def encoded(items: list[tuple[bytes, bytes]]) -> str:
    return "&".join(f"{quote_from_bytes(key)}={quote_from_bytes(value)}" for key, value in items)


def assert_no_server_error(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.data[:300])
    assert b"Traceback" not in response.data, what


@pytest.mark.parametrize(("method", "path"), list(PROTOCOL))
@settings_
@given(data=st.data())
def test_the_protocol_endpoints_answer_any_parameters(client, rp, method, path, data):
    items = data.draw(pairs(PROTOCOL[method, path]))
    if data.draw(st.booleans()):
        # A known client and its redirect URI, so that the request gets past them.
        items = [(b"client_id", rp.client_id.encode()), (b"response_type", b"code"),
                 (b"redirect_uri", rp.redirect_uris[0].encode()), *items]
    body = encoded(items)
    if method == "GET":
        response = client.get(path, query_string=body)
    else:
        response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert_no_server_error(response, (method, path, items))


@pytest.mark.parametrize("path", ["/malakoff/token", "/malakoff/introspect", "/malakoff/revoke",
                                  "/malakoff/par", "/malakoff/userinfo"])
@settings_
@given(credentials=st.lists(st.one_of(texts(), st.binary(max_size=40)), min_size=1, max_size=3),
       scheme=st.sampled_from(["Basic", "basic", "Bearer", "BASIC"]), encode=st.booleans())
def test_authorization_headers_of_any_bytes_get_an_oauth_error(client, path, credentials, scheme,
                                                               encode):
    # No HTTP server passes a line break inside a header.
    headers = [("Authorization", f"{scheme} " + (base64.b64encode(raw).decode() if encode else
                                                 raw.decode("latin-1").replace("\r", "").replace("\n", "")))
               for raw in credentials]
    response = client.post(path, headers=headers, data={"grant_type": "authorization_code",
                                                        "code": "x", "token": "x"})
    assert_no_server_error(response, (path, headers))
    # A header field longer than the gate takes (and than the proxy would pass).
    longest = len("Authorization: ") + sum(len(value) + 2 for _, value in headers)
    expected = {400, 401, 200} | ({431} if longest > gate.MAX_VALUE_LENGTH else set())
    assert response.status_code in expected, response.status_code


@pytest.mark.parametrize("path", [path for path in FORMS if "/code" not in path])
def test_the_forms_tried_are_those_the_pages_show(client, path):
    """Each form is filled with its page's own fields, so that a hostile value in one of them
    gets past the form's other checks to the service behind it."""
    page = client.get(path)
    assert page.status_code == 200
    shown = {name.decode() for name in re.findall(rb'<(?:input|select|textarea)[^>]* name="([^"]+)"',
                                                     page.data)}
    assert set(FORMS[path]) <= shown, sorted(set(FORMS[path]) - shown)


@pytest.mark.parametrize("path", list(FORMS))
@settings_
@given(data=st.data())
def test_the_forms_answer_any_fields(client, path, data):
    page = client.get("/malakoff/login")
    fields = FORMS[path]
    # A field's own value with one nasty piece in it, or anything at all.
    hostile = {name: data.draw(st.one_of(st.sampled_from(NASTY).map(fields[name].encode().__add__),
                                         texts()))
               for name in data.draw(st.sets(st.sampled_from(sorted(fields)), min_size=1))}
    items = [(b"csrf_token", csrf_token(page.data).encode()),
             *((name.encode(), hostile.get(name, value.encode())) for name, value in fields.items()),
             *data.draw(pairs(list(fields)))]
    response = client.post(path, data=encoded(items), content_type="application/x-www-form-urlencoded")
    assert_no_server_error(response, (path, items))


@pytest.mark.parametrize("path", ["/malakoff/login", "/malakoff/register", "/malakoff/forgot-password",
                                  "/malakoff/token", "/malakoff/login/code/verify"])
@settings_
@given(document=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=20), depth=st.sampled_from([0, 0, 20, 900]))
def test_json_bodies_of_any_shape_get_a_clear_answer(client, path, document, depth):
    page = client.get("/malakoff/login")
    # ensure_ascii: a lone surrogate travels escaped, as JSON allows.
    body = "[" * depth + json.dumps(document) + "]" * depth
    response = client.post(path, data=body, content_type="application/json",
                           headers={"X-CSRFToken": csrf_token(page.data)})
    assert_no_server_error(response, (path, body[:200]))


@settings_
@given(host=st.one_of(st.text(st.characters(max_codepoint=0xFF, exclude_categories=["Cs"]),
                              max_size=80),
                      st.sampled_from(["localhost", "127.0.0.1:5000", "[::1]", "idp.example.org",
                                       "localhost:0", "localhost:65536", "a..b", "-a.b"])),
       path=st.sampled_from(["/malakoff/login", "/malakoff/authorize", "/malakoff/token",
                             "/malakoff/logout", "/malakoff/jwks", "/healthz"]))
def test_any_host_header_gets_a_clear_answer(client, host, path):
    response = client.get(path, headers={"Host": host})
    assert_no_server_error(response, (host, path))


@settings_
@given(segment=texts())
def test_any_path_gets_a_clear_answer(client, segment):
    for prefix in ("/malakoff/activate/", "/malakoff/reset-password/", "/malakoff/account/passkeys/",
                   "/"):
        response = client.get(prefix + quote_from_bytes(segment))
        assert_no_server_error(response, (prefix, segment))


# Every other endpoint that takes input, tried by a member signed in (the account pages), or at
# whatever step the request finds (the sign-in's and registration's later steps): the fields
# its page shows, when it has one, or these.
MORE_FORMS = {
    "/malakoff/account/delete": ["current_password", "confirm"],
    "/malakoff/account/devices/revoke": ["device", "confirm"],
    "/malakoff/account/email": ["current_password", "email", "email_confirm"],
    "/malakoff/account/email/confirm": ["code"],
    "/malakoff/account/mobile": ["current_password", "mobile"],
    "/malakoff/account/mobile/confirm": ["code"],
    "/malakoff/account/passkeys/1": ["name"],
    "/malakoff/account/passkeys/1/remove": ["confirm"],
    "/malakoff/account/passkeys/create": ["credential", "name"],
    "/malakoff/account/passkeys/new": ["current_password", "name"],
    "/malakoff/account/passkeys/options": ["name"],
    "/malakoff/account/password": ["current_password", "password", "password_confirm"],
    "/miel/account/preferences": ["statements", "letters", "marketing"],
    "/malakoff/account/sessions/end": ["session", "confirm"],
    "/malakoff/account/sessions/end-others": ["confirm"],
    "/malakoff/session/extend": [],
    "/malakoff/consent": ["interaction", "allow", "deny"],
    "/malakoff/login/code/send": ["channel"],
    "/malakoff/login/extend": ["interaction"],
    "/malakoff/login/passkey": ["credential", "interaction"],
    "/malakoff/login/passkey/options": ["interaction"],
    "/malakoff/login/terms": ["accept_terms", "statements", "letters", "marketing"],
    "/malakoff/login/update-identifier": ["email", "email_confirm"],
    "/malakoff/login/update-identifier/code": ["code"],
    "/malakoff/logout/confirm": ["confirm", "cancel", "state"],
    "/miel/register/contact": ["email", "email_confirm", "mobile"],
    "/malakoff/register/letter": ["member_number", "code"],
    "/malakoff/activate/x": ["email"],
    "/malakoff/activate/expired": ["email"],
    "/malakoff/reset-password/x": ["password", "password_confirm", "birth_date"],
}


def test_every_endpoint_that_takes_input_is_tried(app):
    """A new endpoint taking a form or a body joins the properties above, or this fails."""
    adapter = app.url_map.bind("localhost")
    tried = {adapter.match(path, method=method)[0]
             for method, path in [*PROTOCOL, *(("POST", path) for path in [*FORMS, *MORE_FORMS])]}
    taking_input = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert taking_input <= tried, sorted(taking_input - tried)


@pytest.fixture
def signed_in(client, make):
    Flow(client, "malakoff", make.client(), make.account()).tokens()
    return client


@pytest.mark.skipif(not DATABASE_URL.startswith("postgresql"), reason="the suite's PostgreSQL")
@pytest.mark.parametrize("path", list(MORE_FORMS))
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_other_forms_answer_any_fields_and_a_refusal_changes_nothing(app, signed_in, path,
                                                                         data):
    page = signed_in.get(path)
    if page.status_code != 200:
        page = signed_in.get("/malakoff/account")
    shown = {name.decode() for name in re.findall(rb'<(?:input|select|textarea)[^>]* name="([^"]+)"',
                                                     page.data)} - {"csrf_token"}
    names = sorted(shown | set(MORE_FORMS[path]))
    items = [(b"csrf_token", (csrf_token(page.data) if b"csrf_token" in page.data else "").encode()),
             *data.draw(pairs(names or ["field"]))]
    before = snapshot(app)
    response = signed_in.post(path, data=encoded(items),
                              content_type="application/x-www-form-urlencoded")
    assert_no_server_error(response, (path, items))
    if response.status_code == 400:
        assert snapshot(app) == before, (path, items)

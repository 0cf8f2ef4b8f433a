"""Discovery advertises exactly what the endpoints do (OIDC Discovery 1.0 3, RFC 8414 2,
RFC 9126 5): every value it lists works through HTTP, and the values a provider could list
but this one does not support are refused."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from tests.flows import Flow, query

ISSUER = "http://localhost/malakoff"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Every member of the document, each checked by a test of this module: a member added to
# discovery needs its check here first.
CHECKED_MEMBERS = {
    "issuer", "authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint",
    "require_pushed_authorization_requests", "userinfo_endpoint", "jwks_uri",
    "end_session_endpoint", "revocation_endpoint", "introspection_endpoint", "scopes_supported",
    "response_types_supported", "response_modes_supported", "grant_types_supported",
    "subject_types_supported", "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported", "claims_supported", "claims_parameter_supported",
    "claim_types_supported", "request_parameter_supported", "request_uri_parameter_supported",
    "acr_values_supported", "prompt_values_supported", "ui_locales_supported",
    "authorization_response_iss_parameter_supported", "backchannel_logout_supported",
    "backchannel_logout_session_supported",
}  # fmt: skip


@pytest.fixture
def document(client) -> dict:
    return client.get("/malakoff/.well-known/openid-configuration").json


def test_every_member_advertised_is_checked(document):
    assert set(document) == CHECKED_MEMBERS


def test_back_channel_logout_is_advertised_with_the_sid_of_id_tokens(document, flow):
    """Logout tokens reaching a relying party are proven in test_backchannel_logout.py; session
    support means the ID token carries the ``sid`` that logout tokens name."""
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert flow.id_token_claims(flow.tokens()["id_token"])["sid"]


def test_issuer_is_the_tenant_and_the_tokens_issuer(document, flow):
    assert document["issuer"] == ISSUER
    assert flow.id_token_claims(flow.tokens()["id_token"])["iss"] == ISSUER


@pytest.mark.parametrize(("member", "method"), [
    ("authorization_endpoint", "GET"), ("token_endpoint", "POST"),
    ("pushed_authorization_request_endpoint", "POST"), ("userinfo_endpoint", "GET"),
    ("jwks_uri", "GET"), ("end_session_endpoint", "GET"), ("revocation_endpoint", "POST"),
    ("introspection_endpoint", "POST"),
])
def test_every_endpoint_is_served_with_its_method(client, document, member, method):
    path = document[member].removeprefix("http://localhost")

    response = client.open(path, method=method)

    assert response.status_code not in (404, 405, 500), (member, response.status_code)


# -- authorization endpoint -----------------------------------------------------------------------


def test_every_response_type_advertised_gives_its_response(document, flow):
    assert document["response_types_supported"] == ["code"]
    assert "code" in query(flow.sign_in(response_type="code").headers["Location"])


@pytest.mark.parametrize("response_type", [
    "token", "id_token", "id_token token", "code id_token", "code token", "code id_token token",
    "none",
])
def test_response_types_not_advertised_are_refused(document, flow, response_type):
    assert response_type not in document["response_types_supported"]

    response = flow.authorize(response_type=response_type)

    assert query(response.headers["Location"])["error"] == "unsupported_response_type"


@pytest.mark.parametrize("mode", ["query", "fragment", "form_post"])
def test_every_response_mode_advertised_carries_the_code(document, flow, mode):
    assert mode in document["response_modes_supported"]

    response = flow.sign_in(response_mode=mode)

    if mode == "form_post":
        assert response.status_code == 200
        assert b'name="code"' in response.data
    else:
        location = response.headers["Location"]
        assert ("#code=" if mode == "fragment" else "?code=") in location


@pytest.mark.parametrize("mode", ["jwt", "query.jwt", "form_post.jwt", "web_message"])
def test_response_modes_not_advertised_are_refused(document, flow, mode):
    assert mode not in document["response_modes_supported"]

    response = flow.authorize(response_mode=mode)

    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_the_response_carries_iss_as_advertised(document, flow):
    assert document["authorization_response_iss_parameter_supported"] is True
    assert query(flow.sign_in().headers["Location"])["iss"] == ISSUER


def test_code_challenge_methods_are_s256_only(document, flow):
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert flow.token(flow.code(code_challenge_method="S256")).status_code == 200
    refused = flow.authorize(code_challenge_method="plain", code_challenge=flow.verifier)
    assert query(refused.headers["Location"])["error"] == "invalid_request"


def test_every_scope_advertised_is_granted(document, flow):
    scope = " ".join(document["scopes_supported"])

    tokens = flow.tokens(scope=scope)

    assert set(tokens["scope"].split()) == set(document["scopes_supported"])
    assert "refresh_token" in tokens  # offline_access


def _all_claims(http, tenant: str, rp, account, scopes: list[str], names: list[str]) -> set[str]:
    flow = Flow(http, tenant, rp, account)
    claims_request = {"id_token": dict.fromkeys(names), "userinfo": dict.fromkeys(names)}
    tokens = flow.tokens(scope=" ".join(scopes), claims=json.dumps(claims_request))
    userinfo = http.get(f"/{tenant}/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    return set(flow.id_token_claims(tokens["id_token"])) | set(userinfo)


def test_every_claim_advertised_is_released(client, make, document):
    # Member claims differ by tenant (communication preferences are Miel's).
    released = set()
    for tenant in ("malakoff", "miel"):
        released |= _all_claims(client, tenant, make.client(tenant), make.account(tenant),
                                document["scopes_supported"], document["claims_supported"])

    # No more, no less: every claim the tokens and UserInfo carry is advertised.
    assert set(document["claims_supported"]) == released
    assert document["claims_parameter_supported"] is True


def test_claims_are_normal_claims(document, flow):
    assert document["claim_types_supported"] == ["normal"]
    tokens = flow.tokens(scope="openid profile")
    userinfo = flow.http.get("/malakoff/userinfo",
                             headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert "_claim_names" not in userinfo and "_claim_sources" not in userinfo


def test_subjects_are_public(client, make, member, document):
    assert document["subject_types_supported"] == ["public"]
    first = Flow(client, "malakoff", make.client(), member)
    second = Flow(client, "malakoff", make.client(), member)
    first_token = first.tokens()["id_token"]
    # Signed in already: the second client's code comes at once.
    code = query(second.authorize().headers["Location"])["code"]
    second_token = second.token(code).json["id_token"]
    assert first.id_token_claims(first_token)["sub"] == member.id
    assert second.id_token_claims(second_token)["sub"] == member.id


@pytest.mark.parametrize("acr", ["urn:mh:acr:pwd", "urn:mh:acr:otp", "urn:mh:acr:phr"])
def test_every_acr_value_advertised_is_accepted(document, flow, acr):
    assert acr in document["acr_values_supported"]

    response = flow.authorize(acr_values=acr)

    assert response.status_code == 200 and b'name="password"' in response.data


def test_every_prompt_advertised_is_honoured(client, make, member, document):
    assert document["prompt_values_supported"] == ["none", "login", "consent"]
    flow = Flow(client, "malakoff", make.client(first_party=False), member)
    refused = flow.authorize(prompt="none")
    assert query(refused.headers["Location"])["error"] == "login_required"
    assert b'name="password"' in flow.authorize(prompt="login").data
    flow.login(flow.authorize())  # the consent given on the way (third-party client)
    assert "/malakoff/consent" in flow.authorize(prompt="consent").headers["Location"]


@pytest.mark.parametrize(("locale", "lang"), [("fr-FR", "fr"), ("en", "en")])
def test_every_ui_locale_advertised_is_spoken(document, flow, locale, lang):
    assert locale in document["ui_locales_supported"]

    login = flow.authorize(ui_locales=locale)

    assert f'<html lang="{lang}">'.encode() in login.data


def test_request_objects_are_refused_as_advertised(document, flow):
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    by_value = flow.authorize(request="eyJhbGciOiJub25lIn0.e30.")
    by_reference = flow.authorize(request_uri="https://rp.example.org/request.jwt")
    assert query(by_value.headers["Location"])["error"] == "request_not_supported"
    assert query(by_reference.headers["Location"])["error"] == "request_uri_not_supported"


def test_pushed_requests_are_optional_unless_the_client_requires_them(document, flow):
    assert document["require_pushed_authorization_requests"] is False
    assert "code" in query(flow.sign_in().headers["Location"])


# -- token endpoint ----------------------------------------------------------------------------------


def test_every_grant_type_advertised_issues_tokens(document, flow):
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    tokens = flow.tokens(scope="openid offline_access")
    assert flow.refresh(tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("grant_type", [
    "client_credentials", "password", "implicit", "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:openid:params:grant-type:ciba",
])
def test_grant_types_not_advertised_are_refused(document, flow, grant_type):
    assert grant_type not in document["grant_types_supported"]

    response = flow.http.post("/malakoff/token", data={"grant_type": grant_type},
                              **flow.client_auth())

    assert response.status_code == 400
    assert response.json["error"] == "unsupported_grant_type"


def _keys(alg: str):
    return RSAKey.generate_key(2048, auto_kid=True) if alg == "RS256" else ECKey.generate_key(
        "P-256", auto_kid=True)


def _authentication(method: str, rp, key=None, alg: str = "RS256") -> tuple[dict, dict]:
    """Form fields and request options that authenticate ``rp`` with ``method``."""
    if method == "client_secret_basic":
        return {}, {"auth": (rp.client_id, rp.secret)}
    if method == "client_secret_post":
        return {"client_id": rp.client_id, "client_secret": rp.secret}, {}
    if method == "none":
        return {"client_id": rp.client_id}, {}
    now = int(time.time())
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER,
              "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 60}
    assertion = jwt.encode({"alg": alg, "kid": key.kid}, claims, key)
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, {}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                    "none"])
def test_every_auth_method_advertised_authenticates_at_every_endpoint(client, make, member,
                                                                      document, method):
    for member_name in ("token_endpoint_auth_methods_supported",
                        "revocation_endpoint_auth_methods_supported",
                        "introspection_endpoint_auth_methods_supported"):
        assert method in document[member_name]
    key = _keys("RS256")
    jwks = KeySet([key]).as_dict(private=False) if method == "private_key_jwt" else None
    rp = make.client(auth_method=method, jwks=jwks)
    flow = Flow(client, "malakoff", rp, member)

    def authenticated(path: str, data: dict):
        fields, options = _authentication(method, rp, key)
        return client.post(path, data={**data, **fields}, **options)

    pushed = authenticated("/malakoff/par", flow.params())
    assert pushed.status_code == 201, pushed.json
    signed_in = flow.login(client.get("/malakoff/authorize", query_string={
        "client_id": rp.client_id, "request_uri": pushed.json["request_uri"]}))
    tokens = authenticated("/malakoff/token", {
        "grant_type": "authorization_code", "code": query(signed_in.headers["Location"])["code"],
        "redirect_uri": rp.redirect_uris[0], "code_verifier": flow.verifier})
    assert tokens.status_code == 200, tokens.json
    access_token = tokens.json["access_token"]
    introspected = authenticated("/malakoff/introspect", {"token": access_token})
    assert introspected.status_code == 200 and introspected.json["active"] is True
    assert authenticated("/malakoff/revoke", {"token": access_token}).status_code == 200
    assert authenticated("/malakoff/introspect", {"token": access_token}).json["active"] is False


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_every_assertion_alg_advertised_authenticates_at_every_endpoint(client, make, member,
                                                                        document, alg):
    # RFC 8414 2: each endpoint that lists private_key_jwt lists the algorithms it verifies.
    for member_name in ("token_endpoint_auth_signing_alg_values_supported",
                        "revocation_endpoint_auth_signing_alg_values_supported",
                        "introspection_endpoint_auth_signing_alg_values_supported"):
        assert alg in document[member_name], member_name
    key = _keys(alg)
    rp = make.client(auth_method="private_key_jwt", jwks=KeySet([key]).as_dict(private=False))
    flow = Flow(client, "malakoff", rp, member)

    def authenticated(path: str, data: dict):
        fields, _options = _authentication("private_key_jwt", rp, key, alg)
        return client.post(path, data={**data, **fields})

    # The push endpoint authenticates as the token endpoint does (RFC 9126 2).
    pushed = authenticated("/malakoff/par", flow.params())
    assert pushed.status_code == 201, pushed.json
    signed_in = flow.login(client.get("/malakoff/authorize", query_string={
        "client_id": rp.client_id, "request_uri": pushed.json["request_uri"]}))
    fields, _options = _authentication("private_key_jwt", rp, key, alg)
    tokens = flow.token(query(signed_in.headers["Location"])["code"], **fields)
    assert tokens.status_code == 200, tokens.json
    access_token = tokens.json["access_token"]
    assert authenticated("/malakoff/introspect", {"token": access_token}).json["active"] is True
    assert authenticated("/malakoff/revoke", {"token": access_token}).status_code == 200
    assert authenticated("/malakoff/introspect", {"token": access_token}).json["active"] is False


def test_client_secret_jwt_is_not_advertised_and_refused(document, flow):
    # An assertion MACed with the client's secret (client_secret_jwt, OIDC Core 9).
    assert "client_secret_jwt" not in document["token_endpoint_auth_methods_supported"]
    assert "HS256" not in document["token_endpoint_auth_signing_alg_values_supported"]
    rp = flow.rp
    now = int(time.time())
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER,
              "jti": secrets.token_urlsafe(16), "exp": now + 60}
    assertion = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(rp.secret))

    response = flow.http.post("/malakoff/token", data={
        "grant_type": "authorization_code", "code": flow.code(), "redirect_uri": rp.redirect_uris[0],
        "code_verifier": flow.verifier, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion})

    # RFC 6749 5.2: 401 only when the client authenticated through the Authorization header.
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_id_tokens_are_signed_with_an_alg_advertised(app, document, flow, alg):
    assert alg in document["id_token_signing_alg_values_supported"]
    keystore = app.extensions["idp"].keystore
    keystore.activate(keystore.generate(alg).kid, force=True)

    id_token = flow.tokens()["id_token"]

    assert jws.extract_compact(id_token.encode()).headers()["alg"] == alg
    assert flow.id_token_claims(id_token)["sub"] == flow.account.id

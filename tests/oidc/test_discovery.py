"""Discovery (OIDC Discovery 1.0 §3) and JWKS, per tenant."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_each_tenant_is_its_own_issuer(client, tenant):
    response = client.get(f"/{tenant}/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json
    issuer = f"http://localhost/{tenant}"
    assert doc["issuer"] == issuer
    for name, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/jwks"),
                       ("end_session_endpoint", "/logout"), ("revocation_endpoint", "/revoke"),
                       ("introspection_endpoint", "/introspect")]:
        assert doc[name] == issuer + path
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert set(doc["response_modes_supported"]) == {"query", "fragment", "form_post"}
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert doc["acr_values_supported"] == ["urn:mh:acr:pwd", "urn:mh:acr:otp", "urn:mh:acr:phr"]
    assert {"openid", "profile", "email", "phone", "member", "offline_access"} <= set(
        doc["scopes_supported"])
    assert {"member_number", "tenant", "role", "acr", "amr", "auth_time"} <= set(doc["claims_supported"])


def test_unknown_tenant_is_not_found(client):
    response = client.get("/acme/.well-known/openid-configuration")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_discovery_and_jwks_are_cacheable_with_etag(client):
    for path in ("/malakoff/.well-known/openid-configuration", "/malakoff/jwks"):
        first = client.get(path)
        assert first.headers["Cache-Control"] == "public, max-age=300"
        etag = first.headers["ETag"]
        second = client.get(path, headers={"If-None-Match": etag})
        assert second.status_code == 304


def test_served_jwks_follows_the_keys_directory(client, app):
    """The JWKS body is serialized once per keys.json: a new key changes it and its ETag."""
    before = client.get("/malakoff/jwks")
    assert client.get("/malakoff/jwks").data == before.data
    app.extensions["idp"].keystore.generate("ES256")
    after = client.get("/malakoff/jwks", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert len(after.json["keys"]) == len(before.json["keys"]) + 1
    assert after.json == app.extensions["idp"].keystore.public_jwks()


def test_discovery_is_served_as_json_per_issuer(client):
    malakoff = client.get("/malakoff/.well-known/openid-configuration")
    miel = client.get("/miel/.well-known/openid-configuration")
    assert malakoff.mimetype == miel.mimetype == "application/json"
    assert malakoff.json["issuer"] != miel.json["issuer"]
    assert malakoff.headers["ETag"] != miel.headers["ETag"]


def test_cors_on_discovery_and_jwks_not_on_authorize(client, rp):
    origin = {"Origin": "https://spa.example.org"}
    assert client.get("/malakoff/jwks", headers=origin).headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/malakoff/.well-known/openid-configuration", headers=origin).headers[
        "Access-Control-Allow-Origin"] == "*"
    response = client.get("/malakoff/authorize", headers=origin,
                          query_string={"client_id": rp.client_id})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_jwks_publishes_public_keys_only(client, app):
    keys = client.get("/malakoff/jwks").json["keys"]
    keystore = app.extensions["idp"].keystore
    assert {k["kid"] for k in keys} == {k.kid for k in keystore.all_keys()}
    for key in keys:
        assert key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_both_tenants_publish_the_same_keys(client):
    assert client.get("/malakoff/jwks").json == client.get("/miel/jwks").json


@pytest.mark.parametrize("path", ["/malakoff/.well-known/openid-configuration", "/malakoff/jwks"])
def test_revalidation_compares_entity_tags_weakly(client, path):
    """RFC 9110 13.1.2: If-None-Match matches a weak tag, any tag in a list, and "*"; a 304
    carries the validators and cache directives of the 200 (15.4.5), and no content."""
    first = client.get(path)
    etag = first.headers["ETag"]
    assert not etag.startswith("W/")  # strong: the bytes are the same wherever it is served
    for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(path, headers={"If-None-Match": condition, "Origin": "https://a.example"})
        assert again.status_code == 304, condition
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == "public, max-age=300"
        assert again.headers["Access-Control-Allow-Origin"] == "*"
        assert again.headers["X-Content-Type-Options"] == "nosniff"
    changed = client.get(path, headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert changed.data == first.data
    head = client.head(path)
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["ETag"] == etag
    assert head.headers["Content-Length"] == str(len(first.data))


@pytest.mark.parametrize("path", ["/malakoff/.well-known/openid-configuration", "/malakoff/jwks"])
def test_metadata_preflight_allows_any_origin(client, path):
    """A browser asks first when a script sends its own header fields (CORS preflight)."""
    response = client.options(path, headers={"Origin": "https://spa.example.org",
                                             "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert response.headers["Content-Security-Policy"]

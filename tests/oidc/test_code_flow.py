"""Authorization code flow: the happy path for both tenants, GET and POST."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode

import pytest

from tests.flows import Flow, query


@pytest.mark.parametrize("tenant", ["malakoff", "miel"])
def test_code_flow_issues_tokens_and_id_token(client, make, tenant):
    rp = make.client(tenant)
    account = make.account(tenant)
    flow = Flow(client, tenant, rp, account)

    response = flow.sign_in()
    params = query(response.headers["Location"])
    assert response.headers["Location"].startswith(rp.redirect_uris[0] + "?")
    assert params["iss"] == f"http://localhost/{tenant}"
    assert params["state"].startswith("st-")

    tokens = flow.token(params["code"]).json
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 600
    claims = flow.id_token_claims(tokens["id_token"])
    assert claims["iss"] == f"http://localhost/{tenant}"
    assert claims["aud"] == [rp.client_id]
    assert claims["sub"] == account.id
    assert claims["nonce"].startswith("n-")
    assert claims["acr"] == "urn:mh:acr:otp"
    assert claims["amr"] == ["pwd", "otp", "mail" if account.email else "sms"]
    assert isinstance(claims["auth_time"], int)
    assert claims["member_number"] == account.member_number
    assert claims["tenant"] == tenant
    assert claims["given_name"] == "Jeanne"
    assert "at_hash" in claims


def test_authorization_request_by_post(flow):
    response = flow.login(flow.authorize(method="POST"))
    assert "code" in query(response.headers["Location"])


def test_second_authorization_uses_the_session(flow):
    flow.code()
    response = flow.authorize()
    assert response.status_code == 302
    assert "code" in query(response.headers["Location"])


def test_id_token_header_names_the_active_key(flow, app):
    id_token = flow.tokens()["id_token"]
    header = json.loads(urlsafe_b64decode(id_token.split(".")[0] + "=="))
    keystore = app.extensions["idp"].keystore
    assert header["kid"] == keystore.signing_key().kid
    assert header["alg"] == "RS256"

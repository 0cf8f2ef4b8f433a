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
    # The last sign-in page answers with the way straight back to the portal, with the code.
    assert response.request.method == "POST" and response.request.path.startswith(f"/{tenant}/login")
    assert response.status_code == 303
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
    assert "at_hash" in claims
    # OIDC Core 5.4: the scopes' claims are the UserInfo endpoint's, as an access token is issued.
    assert "member_number" not in claims and "given_name" not in claims
    userinfo = client.get(f"/{tenant}/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert userinfo["member_number"] == account.member_number
    assert userinfo["tenant"] == tenant
    assert userinfo["given_name"] == "Jeanne"


PERSONAL = {"given_name", "family_name", "birthdate", "email", "email_verified", "phone_number",
            "phone_number_verified", "member_number", "tenant", "role", "communication_preferences"}


def test_id_token_carries_no_personal_claim_the_scopes_release(flow):
    tokens = flow.tokens(scope="openid profile email phone member")

    claims = flow.id_token_claims(tokens["id_token"])

    assert not PERSONAL & set(claims), claims
    assert {"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
            "at_hash"} <= set(claims)


def test_id_token_carries_the_claims_asked_for_it_by_name(flow):
    # OIDC Core 5.5: claims.id_token names what the ID token itself must carry.
    request = {"id_token": {"phone_number": None, "birthdate": {"essential": True}}}
    tokens = flow.tokens(scope="openid profile email phone", claims=json.dumps(request))

    claims = flow.id_token_claims(tokens["id_token"])

    assert PERSONAL & set(claims) == {"phone_number", "birthdate"}
    assert claims["phone_number"] == "+33612345688"
    assert claims["birthdate"] == "1958-03-14"


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

"""The claims request parameter (OIDC Core 5.5)."""

from __future__ import annotations

import json


def test_individual_claims_requested_for_the_id_token(flow):
    claims = {"id_token": {"email": None, "member_number": {"essential": True}, "unknown": None}}
    tokens = flow.tokens(scope="openid", claims=json.dumps(claims))
    id_token = flow.id_token_claims(tokens["id_token"])
    assert id_token["email"] == flow.account.email
    assert id_token["member_number"] == flow.account.member_number
    assert "unknown" not in id_token
    assert "given_name" not in id_token


def test_individual_claims_requested_for_userinfo(flow):
    tokens = flow.tokens(scope="openid", claims=json.dumps({"userinfo": {"phone_number": None}}))
    info = flow.http.get("/malakoff/userinfo",
                         headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert info == {"sub": flow.account.id, "phone_number": "+33612345688"}

"""Key rotation with tokens in flight: publish, then sign, then retire (SPEC §8)."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.flows import query


def _kid(token: str) -> str:
    return json.loads(urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


def test_rotation_loses_no_token_in_flight(flow, runner, app):
    keystore = app.extensions["idp"].keystore
    before = flow.tokens(scope="openid offline_access")
    old_kid = _kid(before["id_token"])
    code_in_flight = query(flow.authorize().headers["Location"])["code"]

    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    new_kid = keystore.signing_key().kid
    assert new_kid != old_kid

    # The old ID token still verifies against the published JWKS.
    jwks = KeySet.import_key_set(flow.http.get("/malakoff/jwks").json)
    assert jwt.decode(before["id_token"], jwks).claims["sub"] == flow.account.id
    # A code issued before the rotation is redeemed after it, signed with the new key.
    after = flow.token(code_in_flight).json
    assert _kid(after["id_token"]) == new_kid
    # Tokens issued before the rotation keep working.
    userinfo = flow.http.get("/malakoff/userinfo",
                             headers={"Authorization": f"Bearer {before['access_token']}"})
    assert userinfo.status_code == 200
    assert flow.refresh(before["refresh_token"]).status_code == 200
    # The old ID token still serves as id_token_hint.
    response = flow.authorize(prompt="none", id_token_hint=before["id_token"])
    assert "code" in query(response.headers["Location"])


def test_new_key_is_published_before_it_signs(flow, runner, app):
    keystore = app.extensions["idp"].keystore
    published = {k["kid"] for k in flow.http.get("/malakoff/jwks").json["keys"]}
    upcoming = [k.kid for k in keystore.all_keys() if k.state == "next"]
    assert upcoming and set(upcoming) <= published
    runner.invoke(args=["keys", "rotate"])
    assert keystore.signing_key().kid in published

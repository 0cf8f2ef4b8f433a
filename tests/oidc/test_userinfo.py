"""UserInfo endpoint (OIDC Core 5.3, 5.4, 5.5; RFC 6750 2-3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from idp.db import utcnow
from idp.oidc.models import Token, token_digest
from tests.flows import Flow

USERINFO = "/malakoff/userinfo"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, (response.status_code, response.data[:300])
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.json["error"] == "invalid_token"


def assert_bare_challenge(response) -> None:
    # RFC 6750 3.1: no credentials (or another scheme) get a challenge without an error code.
    assert response.status_code == 401, (response.status_code, response.data[:300])
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.split()[0] == "Bearer"
    assert "error=" not in challenge
    assert "error" not in (response.get_json(silent=True) or {})


def age(db, access_token: str, *, seconds: int) -> None:
    """Move the token's issue time back, as if `seconds` had passed."""
    db.rollback()
    row = db.scalar(select(Token).where(Token.access_token_digest == token_digest(access_token)))
    db.execute(
        update(Token)
        .where(Token.id == row.id)
        .values(issued_at=row.issued_at - timedelta(seconds=seconds))
    )
    db.commit()


# -- retrieval (OIDC Core 5.3.1) ------------------------------------------------------------------


def test_userinfo_by_get(flow, client):
    access_token = flow.tokens()["access_token"]

    response = client.get(USERINFO, headers=bearer(access_token))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["sub"] == flow.account.id
    # Personal data: never cached (SPEC §9).
    assert response.headers["Cache-Control"] == "no-store"


def test_userinfo_by_post(flow, client):
    access_token = flow.tokens()["access_token"]

    response = client.post(USERINFO, headers=bearer(access_token))

    assert response.status_code == 200
    assert response.json["sub"] == flow.account.id


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_auth_scheme_is_case_insensitive(flow, client, scheme):
    access_token = flow.tokens()["access_token"]

    response = client.get(USERINFO, headers={"Authorization": f"{scheme} {access_token}"})

    assert response.status_code == 200


def test_sub_matches_the_id_token(flow, client):
    tokens = flow.tokens()

    claims = client.get(USERINFO, headers=bearer(tokens["access_token"])).json

    # OIDC Core 5.3.2: the sub MUST match the ID token's.
    assert claims["sub"] == flow.id_token_claims(tokens["id_token"])["sub"]


def test_token_in_a_form_encoded_post_body_is_accepted(flow, client):
    """RFC 6750 2.2: a form-encoded body parameter, for clients that cannot set the header."""
    access_token = flow.tokens()["access_token"]

    response = client.post(USERINFO, data={"access_token": access_token})

    assert response.status_code == 200
    assert response.json["sub"] == flow.account.id


def test_token_in_the_query_or_a_get_or_multipart_body_is_not_accepted(flow, client):
    """RFC 6750 2.2 needs a form-encoded body of a method that has one; the query form (2.3)
    leaks tokens into logs (RFC 9700 4.3.2)."""
    access_token = flow.tokens()["access_token"]

    by_query = client.get(USERINFO, query_string={"access_token": access_token})
    by_post_query = client.post(USERINFO, query_string={"access_token": access_token})
    by_multipart = client.post(USERINFO, data={"access_token": access_token},
                               content_type="multipart/form-data")
    by_get_body = client.get(USERINFO, data={"access_token": access_token},
                             content_type="application/x-www-form-urlencoded")

    for response in (by_query, by_post_query, by_multipart, by_get_body):
        assert_bare_challenge(response)


def test_token_in_the_header_and_the_body_is_invalid_request(flow, client):
    # RFC 6750 2: clients MUST NOT use more than one method to transmit the token.
    access_token = flow.tokens()["access_token"]

    response = client.post(USERINFO, headers=bearer(access_token), data={"access_token": access_token})

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_an_unknown_token_in_the_body_is_invalid_token(flow, client):
    flow.tokens()

    assert_invalid_token(client.post(USERINFO, data={"access_token": "garbage"}))


# -- claims released per scope (OIDC Core 5.4) ---------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", {"sub"}),
        ("openid profile", {"sub", "given_name", "family_name", "birthdate"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
        ("openid member", {"sub", "member_number", "tenant", "role"}),
        ("openid offline_access", {"sub"}),
        (
            "openid profile email phone member",
            {
                "sub",
                "given_name",
                "family_name",
                "birthdate",
                "email",
                "email_verified",
                "phone_number",
                "phone_number_verified",
                "member_number",
                "tenant",
                "role",
            },
        ),
    ],
)
def test_claims_released_per_scope(flow, client, scope, expected):
    access_token = flow.tokens(scope=scope)["access_token"]

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    assert set(claims) == expected


def test_claim_values(flow, client):
    access_token = flow.tokens(scope="openid profile email phone member")["access_token"]
    account = flow.account

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    assert claims == {
        "sub": account.id,
        "given_name": "Jeanne",
        "family_name": "Martin",
        "birthdate": "1958-03-14",
        "email": account.email,
        "email_verified": account.email_verified,
        "phone_number": "+33612345688",
        "phone_number_verified": account.phone_number_verified,
        "member_number": account.member_number,
        "tenant": "malakoff",
        "role": account.role,
    }


def test_claims_of_scopes_the_client_may_not_have_are_not_released(client, make, member):
    rp = make.client(scopes=("openid", "profile"))
    flow = Flow(client, "malakoff", rp, member)
    access_token = flow.tokens(scope="openid profile email phone member")["access_token"]

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    assert set(claims) == {"sub", "given_name", "family_name", "birthdate"}


def test_miel_userinfo(client, make):
    rp = make.client("miel")
    account = make.account("miel")
    flow = Flow(client, "miel", rp, account)
    access_token = flow.tokens(scope="openid member profile")["access_token"]

    claims = client.get("/miel/userinfo", headers=bearer(access_token)).json

    assert claims["sub"] == account.id
    assert claims["tenant"] == "miel"
    assert claims["member_number"] == account.member_number


# -- the claims request parameter (OIDC Core 5.5) -----------------------------------------------


def test_claims_parameter_userinfo_member_is_released(flow, client):
    request = {"userinfo": {"member_number": None, "email": {"essential": True}}}
    access_token = flow.tokens(scope="openid", claims=json.dumps(request))["access_token"]

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    assert set(claims) == {"sub", "member_number", "email"}
    assert claims["member_number"] == flow.account.member_number


def test_claims_requested_for_the_id_token_only_stay_out_of_userinfo(flow, client):
    request = {"id_token": {"email": None, "phone_number": None}}
    tokens = flow.tokens(scope="openid", claims=json.dumps(request))

    claims = client.get(USERINFO, headers=bearer(tokens["access_token"])).json

    assert set(claims) == {"sub"}
    id_token = flow.id_token_claims(tokens["id_token"])
    assert id_token["email"] == flow.account.email


@pytest.mark.parametrize(
    "name", ["password_hash", "status", "id", "created_at", "terms_version", "name"]
)
def test_claims_parameter_cannot_reach_other_attributes(flow, client, name):
    request = {"userinfo": {name: {"essential": True}}}
    access_token = flow.tokens(scope="openid", claims=json.dumps(request))["access_token"]

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    assert set(claims) == {"sub"}


def test_claims_parameter_is_limited_to_the_clients_scopes(client, make, member):
    rp = make.client(scopes=("openid", "profile"))
    flow = Flow(client, "malakoff", rp, member)
    request = {
        "userinfo": {"phone_number": None, "email": None, "member_number": None, "given_name": None}
    }
    access_token = flow.tokens(scope="openid", claims=json.dumps(request))["access_token"]

    claims = client.get(USERINFO, headers=bearer(access_token)).json

    # A client registered without email/phone/member cannot obtain them by naming the claims.
    assert set(claims) == {"sub", "given_name"}


# -- failures (RFC 6750 3.1) ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["garbage", "x" * 43, "x" * 500, "a b", "\u00e9t\u00e9"])
def test_unknown_token(client, flow, token):
    flow.tokens()

    assert_invalid_token(
        client.get(
            USERINFO, headers={"Authorization": f"Bearer {token}".encode().decode("latin-1")}
        )
    )


def test_expired_token(flow, client, db):
    access_token = flow.tokens()["access_token"]
    age(db, access_token, seconds=601)

    assert_invalid_token(client.get(USERINFO, headers=bearer(access_token)))


def test_token_still_valid_just_before_expiry(flow, client, db):
    access_token = flow.tokens()["access_token"]
    age(db, access_token, seconds=590)

    assert client.get(USERINFO, headers=bearer(access_token)).status_code == 200


def test_revoked_token(flow, client, db):
    access_token = flow.tokens()["access_token"]
    db.rollback()
    db.execute(update(Token).values(revoked_at=utcnow()))
    db.commit()

    assert_invalid_token(client.get(USERINFO, headers=bearer(access_token)))


def test_refresh_token_is_not_an_access_token(flow, client):
    refresh_token = flow.tokens(scope="openid offline_access")["refresh_token"]

    assert_invalid_token(client.get(USERINFO, headers=bearer(refresh_token)))


def test_id_token_is_not_an_access_token(flow, client):
    id_token = flow.tokens()["id_token"]

    assert_invalid_token(client.get(USERINFO, headers=bearer(id_token)))


def test_token_of_a_disabled_account(flow, client, db):
    access_token = flow.tokens()["access_token"]
    db.rollback()
    flow.account.status = "disabled"
    db.commit()

    assert_invalid_token(client.get(USERINFO, headers=bearer(access_token)))


@pytest.mark.parametrize(
    ("issued_by", "presented_to"), [("miel", "malakoff"), ("malakoff", "miel")]
)
def test_token_of_the_other_tenant(client, make, issued_by, presented_to):
    flow = Flow(client, issued_by, make.client(issued_by), make.account(issued_by))
    access_token = flow.tokens()["access_token"]
    assert client.get(f"/{issued_by}/userinfo", headers=bearer(access_token)).status_code == 200

    assert_invalid_token(client.get(f"/{presented_to}/userinfo", headers=bearer(access_token)))


def test_no_token(client):
    assert_bare_challenge(client.get(USERINFO))
    assert_bare_challenge(client.post(USERINFO))


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "DPoP abc"])
def test_another_scheme_gets_a_bearer_challenge(flow, client, header):
    flow.tokens()

    assert_bare_challenge(client.get(USERINFO, headers={"Authorization": header}))


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", ""])
def test_malformed_authorization_header_is_invalid_request(client, header):
    response = client.get(USERINFO, headers={"Authorization": header})

    # RFC 6750 3.1: a malformed request is 400 invalid_request.
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_token_without_openid_scope_is_insufficient(flow, client):
    body = flow.tokens(scope="openid profile offline_access")
    narrowed = flow.refresh(body["refresh_token"], scope="profile offline_access").json

    response = client.get(USERINFO, headers=bearer(narrowed["access_token"]))

    # RFC 6750 3.1: 403 with the challenge naming the missing scope.
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="openid"' in challenge


# -- CORS (SPEC §9) -------------------------------------------------------------------------------


def test_userinfo_allows_cors(flow, client):
    access_token = flow.tokens()["access_token"]
    origin = {"Origin": "https://spa.example.org"}

    ok = client.get(USERINFO, headers={**bearer(access_token), **origin})
    error = client.get(USERINFO, headers={**bearer("nope"), **origin})
    # Refused before the endpoint runs (the input gate): the client reads why all the same.
    refused = client.get(USERINFO + "?claims=%00", headers={**bearer(access_token), **origin})

    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert error.headers["Access-Control-Allow-Origin"] == "*"
    assert refused.status_code == 400
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert refused.json["error"] == "invalid_request"


def test_userinfo_without_origin_has_no_cors_fields(flow, client):
    # A client's back end, not a browser: it says no origin, and reads no CORS fields.
    answer = client.get(USERINFO, headers=bearer(flow.tokens()["access_token"]))

    assert answer.status_code == 200
    assert not [name for name, _value in answer.headers if name.lower().startswith("access-control-")]


def test_userinfo_preflight(client):
    response = client.options(
        USERINFO,
        headers={
            "Origin": "https://spa.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()

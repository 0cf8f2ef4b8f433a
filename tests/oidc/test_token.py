"""Token endpoint, authorization_code grant (RFC 6749 4.1.3, 5; RFC 7636 4.6; OIDC Core 3.1.3)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select, update

from idp.db import utcnow
from idp.events import CODE_REUSED, AuditEvent
from idp.oidc.models import AuthorizationCode, Client, Token, token_digest
from tests.flows import Flow, pkce_pair, query

TOKEN_URL = "/malakoff/token"


def token_count(db) -> int:
    db.rollback()  # end the test session's transaction: see what the requests committed
    return db.scalar(select(func.count()).select_from(Token))


def code_row(db, code: str) -> AuthorizationCode:
    db.rollback()
    return db.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_digest == token_digest(code))
    )


def userinfo_status(http, access_token: str, tenant: str = "malakoff") -> int:
    return http.get(
        f"/{tenant}/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


def assert_error(response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.json["error"] == error
    # RFC 6749 5.1/5.2: token endpoint answers are never cached.
    assert response.headers["Cache-Control"] == "no-store"


# -- success (RFC 6749 5.1, OIDC Core 3.1.3.3) -------------------------------------------------


def test_token_response_fields_without_offline_access(flow):
    response = flow.token(flow.code(scope="openid profile email"))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "openid profile email"
    assert len(body["access_token"]) >= 43  # 256 bits from a CSPRNG, base64url
    # OIDC Core 11: no refresh token without offline_access.
    assert "refresh_token" not in body
    claims = flow.id_token_claims(body["id_token"])
    assert claims["sub"] == flow.account.id
    assert claims["aud"] == [flow.rp.client_id]


def test_refresh_token_only_with_offline_access(flow):
    body = flow.tokens(scope="openid profile offline_access")

    assert body["scope"] == "openid profile offline_access"
    assert len(body["refresh_token"]) >= 43
    assert body["refresh_token"] != body["access_token"]


def test_scope_is_limited_to_the_clients_allowed_scopes(client, make, member):
    rp = make.client(scopes=("openid", "profile"))
    flow = Flow(client, "malakoff", rp, member)

    body = flow.tokens(scope="openid profile email offline_access")

    assert body["scope"] == "openid profile"
    assert "refresh_token" not in body


def test_token_responses_are_not_cacheable(flow):
    response = flow.token(flow.code())

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_tokens_are_stored_as_digests(flow, db):
    body = flow.tokens(scope="openid offline_access")

    db.rollback()
    row = db.scalar(select(Token))
    assert row.access_token_digest == token_digest(body["access_token"])
    assert row.refresh_token_digest == token_digest(body["refresh_token"])
    stored = {str(v) for v in row.__dict__.values()}
    assert body["access_token"] not in stored
    assert body["refresh_token"] not in stored


# -- single use (RFC 6749 4.1.2, 10.5) ---------------------------------------------------------


def test_code_reuse_is_refused_and_revokes_the_tokens_it_produced(flow, client, db):
    code = flow.code(scope="openid profile offline_access")
    first = flow.token(code).json
    assert userinfo_status(client, first["access_token"]) == 200

    again = flow.token(code)

    assert_error(again, 400, "invalid_grant")
    assert "access_token" not in again.json
    assert userinfo_status(client, first["access_token"]) == 401
    assert_error(flow.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert token_count(db) == 1
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == CODE_REUSED))
    assert event.client_id == flow.rp.client_id
    assert event.account_id == flow.account.id


def test_code_reuse_also_revokes_tokens_refreshed_from_it(flow, client):
    code = flow.code(scope="openid profile offline_access")
    first = flow.token(code).json
    refreshed = flow.refresh(first["refresh_token"]).json
    assert userinfo_status(client, refreshed["access_token"]) == 200

    assert_error(flow.token(code), 400, "invalid_grant")

    assert userinfo_status(client, refreshed["access_token"]) == 401
    assert_error(flow.refresh(refreshed["refresh_token"]), 400, "invalid_grant")


def test_code_reuse_leaves_other_grants_alone(flow, client):
    other = flow.tokens()
    code = query(flow.authorize().headers["Location"])["code"]  # same session, second grant
    assert flow.token(code).status_code == 200

    flow.token(code)

    assert userinfo_status(client, other["access_token"]) == 200


# -- expiry ---------------------------------------------------------------------------------------


def test_expired_code_is_refused(flow, db):
    code = flow.code()
    db.rollback()
    db.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_digest == token_digest(code))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.commit()

    assert_error(flow.token(code), 400, "invalid_grant")
    assert token_count(db) == 0


@pytest.mark.parametrize(("elapsed", "status"), [(55, 200), (61, 400)])
def test_code_lives_authorization_code_ttl_seconds(flow, db, monkeypatch, elapsed, status):
    code = flow.code()
    later = utcnow() + timedelta(seconds=elapsed)
    # A frozen clock, moved past (or not yet past) the 60-second code lifetime.
    monkeypatch.setattr("idp.oidc.server.utcnow", lambda: later)

    response = flow.token(code)

    assert response.status_code == status
    if status != 200:
        assert response.json["error"] == "invalid_grant"
        assert token_count(db) == 0


def test_codes_expire_after_the_configured_ttl(flow, db):
    code = flow.code()

    row = code_row(db, code)

    assert abs(row.expires_at - row.created_at - timedelta(seconds=60)) < timedelta(seconds=1)
    assert row.consumed_at is None


# -- binding to the authorization request ---------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://rp.example.org/other",
        "https://rp.example.org/callback/",
        "https://rp.example.org/callback?x=1",
        "HTTPS://RP.EXAMPLE.ORG/callback",
        "",
        None,
    ],
)
def test_redirect_uri_must_match_the_authorization_request(flow, db, redirect_uri):
    code = flow.code()

    response = (
        flow.token(code, redirect_uri=redirect_uri)
        if redirect_uri is not None
        else _without(flow, code, "redirect_uri")
    )

    assert_error(response, 400, "invalid_grant")
    assert token_count(db) == 0


def test_redirect_uri_must_be_the_one_of_the_request_even_if_registered(client, make, member, db):
    rp = make.client(redirect_uris=("https://rp.example.org/a", "https://rp.example.org/b"))
    flow = Flow(client, "malakoff", rp, member)
    code = flow.code(redirect_uri="https://rp.example.org/b")

    assert_error(flow.token(code, redirect_uri="https://rp.example.org/a"), 400, "invalid_grant")
    assert token_count(db) == 0


def test_code_issued_to_another_client_is_refused(flow, client, make, db):
    code = flow.code()
    thief = make.client(redirect_uris=flow.rp.redirect_uris)
    thief_flow = Flow(client, "malakoff", thief, flow.account)

    response = thief_flow.token(code, verifier=flow.verifier)

    assert_error(response, 400, "invalid_grant")
    assert token_count(db) == 0
    # Nothing changed: the code is still good for the client it was issued to.
    assert code_row(db, code).consumed_at is None
    assert flow.token(code).status_code == 200


def test_code_of_the_other_tenant_is_refused(client, make, db):
    miel_rp = make.client("miel")
    miel_flow = Flow(client, "miel", miel_rp, make.account("miel"))
    code = miel_flow.code()

    # The same client credentials and code, sent to the other tenant's token endpoint.
    response = client.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": miel_rp.redirect_uris[0],
            "code_verifier": miel_flow.verifier,
        },
        auth=(miel_rp.client_id, miel_rp.secret),
    )

    assert_error(response, 401, "invalid_client")
    assert token_count(db) == 0


@pytest.mark.parametrize("code", ["not-a-code", "x" * 500, " "])
def test_unknown_code_is_invalid_grant(flow, db, code):
    assert_error(flow.token(code), 400, "invalid_grant")
    assert token_count(db) == 0


def test_missing_code_is_invalid_request(flow, db):
    flow.code()

    assert_error(_without(flow, None, "code"), 400, "invalid_request")
    assert token_count(db) == 0


def test_code_of_a_disabled_account_is_refused(flow, db):
    code = flow.code()
    db.rollback()
    flow.account.status = "disabled"
    db.commit()

    assert_error(flow.token(code), 400, "invalid_grant")
    assert token_count(db) == 0


# -- PKCE (RFC 7636 4.5-4.6, RFC 9700 2.1.1) -----------------------------------------------------


@pytest.mark.parametrize(
    "verifier",
    [
        pkce_pair()[0],  # well formed, but another one
        "a" * 43,
        "a" * 128,
    ],
    ids=["another", "shortest", "longest"],
)
def test_wrong_code_verifier_is_invalid_grant(flow, db, verifier):
    code = flow.code()

    assert_error(flow.token(code, verifier=verifier), 400, "invalid_grant")
    assert token_count(db) == 0


@pytest.mark.parametrize("verifier", ["short", "a" * 129, "bad chars!" * 5])
def test_malformed_code_verifier_is_invalid_request(flow, db, verifier):
    code = flow.code()

    assert_error(flow.token(code, verifier=verifier), 400, "invalid_request")
    assert token_count(db) == 0


def test_missing_code_verifier_when_a_challenge_was_sent_is_invalid_request(flow, db):
    code = flow.code()

    assert_error(flow.token(code, verifier=None), 400, "invalid_request")
    assert token_count(db) == 0


def test_code_verifier_without_a_challenge_is_refused(flow, db):
    # PKCE downgrade (RFC 9700 4.8.2): a verifier for a code that had no challenge.
    exempt_from_pkce(db, flow.rp)
    code = flow.code(code_challenge=None, code_challenge_method=None)

    assert_error(flow.token(code), 400, "invalid_request")
    assert token_count(db) == 0


def test_confidential_client_exempted_from_pkce_still_works(flow, db):
    exempt_from_pkce(db, flow.rp)
    code = flow.code(code_challenge=None, code_challenge_method=None)

    assert flow.token(code, verifier=None).status_code == 200


def test_a_failed_redemption_leaves_the_code_to_its_owner(flow, db):
    """A wrong verifier (an attacker replaying a stolen code) neither consumes the code nor
    counts as a reuse that would revoke the owner's tokens (PKCE is checked first)."""
    code = flow.code()
    assert_error(flow.token(code, verifier=pkce_pair()[0]), 400, "invalid_grant")

    assert code_row(db, code).consumed_at is None
    assert token_count(db) == 0
    assert flow.token(code).status_code == 200
    db.expire_all()
    assert code_row(db, code).consumed_at is not None


# -- grant types (RFC 6749 5.2; SPEC §9: no ROPC, no implicit) -----------------------------------


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "client_credentials",
        "implicit",
        "token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "AUTHORIZATION_CODE",
    ],
)
def test_unsupported_grant_types(client, rp, member, db, grant_type):
    response = client.post(
        TOKEN_URL,
        data={
            "grant_type": grant_type,
            "username": member.email,
            "password": "Correct-Horse-7!",
            "scope": "openid",
        },
        auth=(rp.client_id, rp.secret),
    )

    assert_error(response, 400, "unsupported_grant_type")
    assert token_count(db) == 0


def test_missing_grant_type_is_invalid_request(flow, db):
    code = flow.code()

    assert_error(_without(flow, code, "grant_type"), 400, "invalid_request")
    assert token_count(db) == 0


@pytest.mark.parametrize(
    "response_type", ["token", "id_token", "id_token token", "code id_token", "code token"]
)
def test_implicit_and_hybrid_response_types_are_unsupported(flow, response_type):
    flow.code()  # a session, so only the response type can be at fault

    response = flow.authorize(response_type=response_type)

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(flow.rp.redirect_uris[0] + "?")
    params = query(location)
    assert params["error"] == "unsupported_response_type"
    assert "code" not in params
    assert "access_token" not in location


# -- malformed requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (
            '{"grant_type": "authorization_code", "code": "abc"}',
            "application/json",
            "invalid_request",
        ),
        ("grant_type=authorization_code&code=abc", "text/plain", "invalid_request"),
        ("", "application/x-www-form-urlencoded", "invalid_request"),
        ("%%%&&&===", "application/x-www-form-urlencoded", "invalid_request"),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", "invalid_request"),
        ("--x\r\nbroken", "multipart/form-data; boundary=x", "invalid_request"),
        ("grant_type=%ZZ&code=%", "application/x-www-form-urlencoded", "unsupported_grant_type"),
        (
            "grant_type=authorization_code&code=%ff%fe",
            "application/x-www-form-urlencoded",
            "invalid_grant",
        ),
        (
            "grant_type=authorization_code&code=abc",
            "application/x-www-form-urlencoded; charset=nope",
            "invalid_grant",
        ),
    ],
)
def test_malformed_token_requests_get_an_oauth_error(client, rp, db, body, content_type, error):
    response = client.post(
        TOKEN_URL, data=body, content_type=content_type, auth=(rp.client_id, rp.secret)
    )

    assert_error(response, 400, error)
    assert token_count(db) == 0


def test_json_body_is_not_a_token_request(flow, db):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL,
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.rp.redirect_uris[0],
            "code_verifier": flow.verifier,
        },
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    # RFC 6749 4.1.3: application/x-www-form-urlencoded only.
    assert_error(response, 400, "invalid_request")
    assert token_count(db) == 0
    # The code was not touched and still works.
    assert flow.token(code).status_code == 200


def test_repeated_parameters_are_invalid_request(flow, db):
    code = flow.code()
    data = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code", "other"),
        ("redirect_uri", flow.rp.redirect_uris[0]),
        ("code_verifier", flow.verifier),
    ]

    response = flow.http.post(
        TOKEN_URL,
        data=_encode(data),
        content_type="application/x-www-form-urlencoded",
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    # RFC 6749 3.2: parameters MUST NOT be included more than once.
    assert_error(response, 400, "invalid_request")
    assert token_count(db) == 0


def test_token_endpoint_only_accepts_post(flow):
    code = flow.code()

    response = flow.http.get(
        TOKEN_URL,
        query_string={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.rp.redirect_uris[0],
        },
    )

    assert response.status_code == 405


# -- CORS (SPEC §9) -------------------------------------------------------------------------------


def test_token_responses_allow_cors(flow):
    origin = {"Origin": "https://spa.example.org"}

    code = flow.code()
    ok = flow.http.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.rp.redirect_uris[0],
            "code_verifier": flow.verifier,
        },
        auth=(flow.rp.client_id, flow.rp.secret),
        headers=origin,
    )
    error = flow.http.post(TOKEN_URL, data={"grant_type": "password"}, headers=origin)

    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert error.status_code in (400, 401)
    assert error.headers["Access-Control-Allow-Origin"] == "*"


def test_token_preflight(client):
    response = client.options(
        TOKEN_URL,
        headers={
            "Origin": "https://spa.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


# -- helpers --------------------------------------------------------------------------------------


def _without(flow: Flow, code: str | None, name: str):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.rp.redirect_uris[0],
        "code_verifier": flow.verifier,
    }
    data.pop(name)
    data = {k: v for k, v in data.items() if v is not None}
    return flow.http.post(TOKEN_URL, data=data, auth=(flow.rp.client_id, flow.rp.secret))


def _encode(pairs) -> str:
    return urlencode(pairs)


def exempt_from_pkce(db, rp) -> None:
    """A legacy confidential client, as `idp clients update --no-pkce` leaves it."""
    db.rollback()
    db.execute(update(Client).where(Client.client_id == rp.client_id).values(require_pkce=False))
    db.commit()

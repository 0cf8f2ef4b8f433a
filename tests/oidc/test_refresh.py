"""Refresh token grant: rotation and reuse detection (RFC 6749 6; OAuth 2.0 Security BCP 4.14.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from authlib.oidc.core.grants.util import create_half_hash
from joserfc import jws
from sqlalchemy import func, select, update

from idp.db import utcnow
from idp.events import REFRESH_REUSED, AuditEvent
from idp.oidc.models import Token, token_digest
from tests.flows import Flow, csrf_token, query

OFFLINE = "openid profile email member offline_access"


def token_rows(db) -> list[Token]:
    db.rollback()  # see what the requests committed
    return list(db.scalars(select(Token).order_by(Token.id)))


def token_count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Token))


def userinfo(http, access_token: str, tenant: str = "malakoff"):
    return http.get(f"/{tenant}/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def assert_error(response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.json["error"] == error
    assert "access_token" not in response.json
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def offline(flow) -> dict:
    return flow.tokens(scope=OFFLINE)


# -- rotation -------------------------------------------------------------------------------------


def test_refresh_issues_new_tokens_and_rotates_the_refresh_token(flow, client, offline):
    response = flow.refresh(offline["refresh_token"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == OFFLINE
    assert body["access_token"] != offline["access_token"]
    assert body["refresh_token"] != offline["refresh_token"]
    assert userinfo(client, body["access_token"]).json["sub"] == flow.account.id


def test_a_rotated_refresh_token_no_longer_works(flow, offline):
    flow.refresh(offline["refresh_token"])

    assert_error(flow.refresh(offline["refresh_token"]), 400, "invalid_grant")


def test_each_refresh_rotates_again(flow, offline, db):
    seen = {offline["refresh_token"]}
    current = offline["refresh_token"]
    for _ in range(3):
        body = flow.refresh(current).json
        assert body["refresh_token"] not in seen
        seen.add(body["refresh_token"])
        current = body["refresh_token"]

    rows = token_rows(db)
    assert len(rows) == 4
    assert len({row.family_id for row in rows}) == 1
    assert [row.rotated_at is not None for row in rows] == [True, True, True, False]


def test_refreshed_tokens_keep_the_grant(flow, client, db):
    first = flow.tokens(
        scope="openid member offline_access", claims='{"userinfo": {"email": null}}'
    )

    body = flow.refresh(first["refresh_token"]).json

    claims = userinfo(client, body["access_token"]).json
    assert claims["member_number"] == flow.account.member_number
    # The claims request parameter travels with the grant (OIDC Core 5.5).
    assert claims["email"] == flow.account.email
    rows = token_rows(db)
    assert rows[1].auth_time == rows[0].auth_time
    assert rows[1].code_id == rows[0].code_id


# -- reuse detection ------------------------------------------------------------------------------


def test_reuse_of_a_rotated_refresh_token_revokes_the_whole_family(flow, client, offline, db):
    second = flow.refresh(offline["refresh_token"]).json
    third = flow.refresh(second["refresh_token"]).json
    assert userinfo(client, third["access_token"]).status_code == 200

    # The first refresh token, already rotated, comes back: stolen or replayed.
    assert_error(flow.refresh(offline["refresh_token"]), 400, "invalid_grant")

    assert_error(flow.refresh(third["refresh_token"]), 400, "invalid_grant")
    for body in (offline, second, third):
        assert userinfo(client, body["access_token"]).status_code == 401
    assert all(row.revoked_at is not None for row in token_rows(db))
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == REFRESH_REUSED))
    assert event.client_id == flow.rp.client_id
    assert event.data["revoked_tokens"] == 3


def test_reuse_detection_leaves_other_families_alone(flow, client, offline):
    code = query(flow.authorize(scope=OFFLINE).headers["Location"])["code"]
    other = flow.token(code).json
    flow.refresh(offline["refresh_token"])

    flow.refresh(offline["refresh_token"])

    assert userinfo(client, other["access_token"]).status_code == 200
    assert flow.refresh(other["refresh_token"]).status_code == 200


# -- binding to the client ------------------------------------------------------------------------


def test_refresh_by_another_client_is_refused(flow, client, make, offline, db):
    thief = Flow(client, "malakoff", make.client(), flow.account)

    assert_error(thief.refresh(offline["refresh_token"]), 400, "invalid_grant")

    # Nothing changed: the owner can still refresh.
    assert token_count(db) == 1
    assert token_rows(db)[0].rotated_at is None
    assert flow.refresh(offline["refresh_token"]).status_code == 200


def test_refresh_at_the_other_tenant_is_refused(flow, client, offline, db):
    response = client.post(
        "/miel/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": offline["refresh_token"],
        },
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 1


def test_refresh_needs_client_authentication(flow, client, offline, db):
    response = client.post(
        "/malakoff/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": offline["refresh_token"],
            "client_id": flow.rp.client_id,
        },
    )

    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert token_rows(db)[0].rotated_at is None


# -- scope (RFC 6749 6) ---------------------------------------------------------------------------


# -- a new ID token (OIDC Core 12.2) --------------------------------------------------------------


def test_a_refresh_returns_a_new_id_token_of_the_same_sign_in(flow):
    first = flow.tokens(scope=OFFLINE, claims=json.dumps({"id_token": {"phone_number": None}}))
    response = flow.refresh(first["refresh_token"])

    assert response.status_code == 200
    original = flow.id_token_claims(first["id_token"])
    # Signed by the provider's active key: verified against its JWKS.
    renewed = flow.id_token_claims(response.json["id_token"])
    for name in ("iss", "sub", "aud", "azp", "auth_time", "acr", "amr", "sid", "phone_number"):
        assert renewed[name] == original[name], name
    assert original["nonce"].startswith("n-")
    assert "nonce" not in renewed
    alg = jws.extract_compact(response.json["id_token"].encode()).protected["alg"]
    assert renewed["at_hash"] == create_half_hash(response.json["access_token"], alg).decode()
    assert renewed["exp"] > renewed["iat"] >= original["iat"]


def test_each_rotation_returns_an_id_token(flow, offline):
    second = flow.refresh(offline["refresh_token"]).json
    third = flow.refresh(second["refresh_token"]).json

    assert flow.id_token_claims(third["id_token"])["sub"] == flow.account.id


def test_no_id_token_for_an_access_token_narrowed_without_openid(flow, offline):
    response = flow.refresh(offline["refresh_token"], scope="profile offline_access")

    assert response.status_code == 200
    assert "id_token" not in response.json


def test_scope_may_be_narrowed(flow, client, offline):
    response = flow.refresh(offline["refresh_token"], scope="openid profile offline_access")

    assert response.status_code == 200
    assert response.json["scope"] == "openid profile offline_access"
    claims = userinfo(client, response.json["access_token"]).json
    assert claims["given_name"] == "Jeanne"
    assert "email" not in claims
    assert "member_number" not in claims


def introspected_scope(flow, client, token: str) -> str:
    response = client.post("/malakoff/introspect", data={"token": token}, **flow.client_auth())
    assert response.json["active"], response.json
    return response.json["scope"]


def test_a_narrowed_access_token_leaves_the_grant_whole(flow, client, offline):
    # RFC 6749 6: the new refresh token's scope is the one the member granted, whatever the
    # access token asked for; even without offline_access in the request, the grant goes on.
    narrowed = flow.refresh(offline["refresh_token"], scope="openid").json
    assert narrowed["scope"] == "openid"
    assert "email" not in userinfo(client, narrowed["access_token"]).json
    assert introspected_scope(flow, client, narrowed["access_token"]) == "openid"
    assert introspected_scope(flow, client, narrowed["refresh_token"]) == OFFLINE

    # Another narrowing may ask for what the first one left out.
    email = flow.refresh(narrowed["refresh_token"], scope="openid email").json
    assert email["scope"] == "openid email"
    assert userinfo(client, email["access_token"]).json["email"] == flow.account.email

    # Without a scope, the whole grant again.
    whole = flow.refresh(email["refresh_token"]).json
    assert whole["scope"] == OFFLINE
    assert userinfo(client, whole["access_token"]).json["member_number"] == flow.account.member_number
    assert flow.refresh(whole["refresh_token"], scope=f"{OFFLINE} phone").json["error"] == "invalid_scope"


@pytest.mark.parametrize(
    "scope",
    [
        f"{OFFLINE} phone",
        "openid phone",
        "openid admin",
        "openid profile email member offline_access unknown",
        # Scope values are compared whole, not as patterns.
        "openid pro_ile",
        "openid %",
        "openid email member offline",
    ],
)
def test_scope_may_not_be_widened(flow, offline, db, scope):
    assert_error(flow.refresh(offline["refresh_token"], scope=scope), 400, "invalid_scope")

    # Nothing changed: no new token, the refresh token is not spent.
    assert token_count(db) == 1
    assert flow.refresh(offline["refresh_token"]).status_code == 200


# -- state of the grant ---------------------------------------------------------------------------


def test_refresh_fails_once_the_account_is_disabled(flow, offline, db):
    db.rollback()
    flow.account.status = "disabled"
    db.commit()

    assert_error(flow.refresh(offline["refresh_token"]), 400, "invalid_grant")
    assert token_count(db) == 1
    assert token_rows(db)[0].rotated_at is None


def test_expired_refresh_token_is_refused(flow, offline, db):
    db.rollback()
    db.execute(update(Token).values(refresh_expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()

    assert_error(flow.refresh(offline["refresh_token"]), 400, "invalid_grant")
    assert token_count(db) == 1


def test_refresh_tokens_live_the_configured_ttl(offline, db):
    row = token_rows(db)[0]

    lifetime = row.refresh_expires_at - row.issued_at
    assert abs(lifetime - timedelta(days=30)) < timedelta(seconds=2)


def test_revoked_refresh_token_is_refused(flow, offline, db):
    db.rollback()
    db.execute(update(Token).values(revoked_at=utcnow()))
    db.commit()

    assert_error(flow.refresh(offline["refresh_token"]), 400, "invalid_grant")
    assert token_count(db) == 1


@pytest.mark.parametrize("refresh_token", ["unknown", "", "x" * 300])
def test_unknown_refresh_token_is_invalid_grant(flow, offline, db, refresh_token):
    assert_error(flow.refresh(refresh_token), 400, "invalid_grant")
    assert token_count(db) == 1


def test_access_token_is_not_a_refresh_token(flow, offline, db):
    assert_error(flow.refresh(offline["access_token"]), 400, "invalid_grant")
    assert token_rows(db)[0].rotated_at is None


def test_missing_refresh_token_is_invalid_request(flow, client, offline, db):
    response = client.post(
        "/malakoff/token",
        data={"grant_type": "refresh_token"},
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    assert_error(response, 400, "invalid_request")
    assert token_count(db) == 1


def test_refresh_token_is_stored_as_a_digest(offline, db):
    row = token_rows(db)[0]

    assert row.refresh_token_digest == token_digest(offline["refresh_token"])


# -- clients without offline_access --------------------------------------------------------------


def test_client_without_offline_access_gets_no_refresh_token(client, make, member):
    rp = make.client(scopes=("openid", "profile", "email"))
    flow = Flow(client, "malakoff", rp, member)

    body = flow.tokens(scope="openid profile offline_access")

    assert "refresh_token" not in body
    assert body["scope"] == "openid profile"


def test_client_without_offline_access_may_not_use_the_refresh_grant(client, make, member, db):
    rp = make.client(scopes=("openid", "profile"))
    flow = Flow(client, "malakoff", rp, member)
    flow.tokens()

    response = flow.refresh("anything")

    assert_error(response, 400, "unauthorized_client")
    assert token_count(db) == 1


# -- absolute lifetime and the end of the session ---------------------------------------------------


def test_rotation_keeps_the_familys_absolute_lifetime(flow, offline, db):
    """Each rotation used to start a new 30 days: the family's end is fixed at the sign-in."""
    first = token_rows(db)[0]
    signed_in = datetime.fromtimestamp(first.auth_time, UTC).replace(tzinfo=None)
    assert first.refresh_expires_at == signed_in + timedelta(days=30)
    db.execute(update(Token).values(issued_at=first.issued_at - timedelta(days=10)))
    db.commit()

    second = flow.refresh(offline["refresh_token"]).json
    flow.refresh(second["refresh_token"])

    rows = token_rows(db)
    assert len(rows) == 3
    assert {row.refresh_expires_at for row in rows} == {first.refresh_expires_at}


def test_a_refresh_past_the_familys_end_is_refused_even_just_rotated(flow, offline, db):
    second = flow.refresh(offline["refresh_token"]).json
    db.rollback()
    db.execute(update(Token).values(refresh_expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()

    assert_error(flow.refresh(second["refresh_token"]), 400, "invalid_grant")


def test_a_client_may_have_its_own_refresh_lifetime(flow, runner, db):
    result = runner.invoke(args=["clients", "update", flow.rp.client_id, "--refresh-lifetime", "86400"])
    assert result.exit_code == 0, result.output
    assert "86400 s" in runner.invoke(args=["clients", "show", flow.rp.client_id]).output

    tokens = flow.tokens(scope=OFFLINE)
    flow.refresh(tokens["refresh_token"])

    rows = token_rows(db)
    signed_in = datetime.fromtimestamp(rows[0].auth_time, UTC).replace(tzinfo=None)
    assert {row.refresh_expires_at for row in rows} == {signed_in + timedelta(days=1)}


@pytest.mark.parametrize("seconds", ["0", "59", "-1", str(400 * 86400)])
def test_a_client_refresh_lifetime_is_bounded(flow, runner, seconds):
    result = runner.invoke(args=["clients", "update", flow.rp.client_id, "--refresh-lifetime", seconds])
    assert result.exit_code != 0


def _log_out(flow, id_token: str):
    flow.http.get("/malakoff/logout", query_string={"id_token_hint": id_token})
    page = flow.http.get("/malakoff/logout/confirm")
    return flow.http.post("/malakoff/logout/confirm", data={
        "confirm": "x", "csrf_token": csrf_token(page.data)})


def test_logging_out_ends_the_refresh_tokens_of_that_sign_in(flow, client, app, offline, db):
    # Another browser of the same member keeps its own sign-in and tokens.
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    elsewhere = other.tokens(scope=OFFLINE)
    rotated = flow.refresh(offline["refresh_token"]).json

    assert _log_out(flow, offline["id_token"]).status_code == 303

    assert_error(flow.refresh(rotated["refresh_token"]), 400, "invalid_grant")
    assert userinfo(client, rotated["access_token"]).status_code == 401
    assert flow.refresh(elsewhere["refresh_token"]).status_code == 200
    db.rollback()
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == "oidc:logout:revoke"))
    assert event is not None and event.data["revoked_tokens"] == 2


def test_cancelling_the_logout_keeps_the_refresh_tokens(flow, offline):
    flow.http.get("/malakoff/logout", query_string={"id_token_hint": offline["id_token"]})
    page = flow.http.get("/malakoff/logout/confirm")
    flow.http.post("/malakoff/logout/confirm", data={"cancel": "x", "csrf_token": csrf_token(page.data)})

    assert flow.refresh(offline["refresh_token"]).status_code == 200

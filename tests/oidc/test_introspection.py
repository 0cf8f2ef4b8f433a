"""Token introspection (RFC 7662)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select, update

from idp.db import utcnow
from idp.oidc.models import Token, token_digest
from tests.flows import Flow

INTROSPECT = "/malakoff/introspect"
OFFLINE = "openid profile offline_access"
INACTIVE = {"active": False}


def introspect(flow: Flow, token: str, **extra):
    return flow.http.post(
        f"/{flow.tenant}/introspect",
        data={"token": token, **extra},
        auth=(flow.rp.client_id, flow.rp.secret),
    )


def row_of(db, access_token: str) -> Token:
    db.rollback()
    return db.scalar(select(Token).where(Token.access_token_digest == token_digest(access_token)))


def set_row(db, access_token: str, **values) -> None:
    row = row_of(db, access_token)
    db.execute(update(Token).where(Token.id == row.id).values(**values))
    db.commit()


@pytest.fixture
def offline(flow) -> dict:
    return flow.tokens(scope=OFFLINE)


@pytest.fixture(params=["UTC0", "EAST-14", "WEST+8"])
def local_timezone(request):
    """Run under several local time zones: timestamps must not depend on the host's."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = request.param  # POSIX form: no tz database needed
    time.tzset()
    yield
    if previous is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = previous
    time.tzset()


# -- active tokens (RFC 7662 2.2) -----------------------------------------------------------------


def test_active_access_token(flow, offline):
    response = introspect(flow, offline["access_token"])

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["active"] is True
    assert body["scope"] == OFFLINE
    assert body["client_id"] == flow.rp.client_id
    assert body["sub"] == flow.account.id
    assert body["token_type"] == "Bearer"
    assert body["iss"] == "http://localhost/malakoff"
    assert body["aud"] == flow.rp.client_id
    id_token = flow.id_token_claims(offline["id_token"])
    assert body["acr"] == id_token["acr"]
    assert body["auth_time"] == id_token["auth_time"]


def test_timestamps_are_utc_epoch_seconds(flow, offline, local_timezone):
    now = time.time()

    body = introspect(flow, offline["access_token"]).json

    assert abs(body["iat"] - now) < 5
    assert abs(body["exp"] - (now + 600)) < 5
    assert body["exp"] - body["iat"] == 600


def test_active_refresh_token(flow, offline, local_timezone):
    now = time.time()

    body = introspect(flow, offline["refresh_token"], token_type_hint="refresh_token").json

    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == flow.rp.client_id
    assert body["sub"] == flow.account.id
    assert body["scope"] == OFFLINE
    assert abs(body["exp"] - (now + 30 * 24 * 3600)) < 5


@pytest.mark.parametrize(
    ("token", "hint"),
    [
        ("access_token", "refresh_token"),
        ("refresh_token", "access_token"),
    ],
)
def test_a_wrong_hint_still_finds_the_token(flow, offline, token, hint):
    # RFC 7662 2.1: the server MUST extend its search beyond the hint.
    body = introspect(flow, offline[token], token_type_hint=hint).json

    assert body["active"] is True


def test_refresh_token_outlives_its_access_token(flow, offline, db):
    row = row_of(db, offline["access_token"])
    set_row(db, offline["access_token"], issued_at=row.issued_at - timedelta(seconds=601))

    assert introspect(flow, offline["access_token"]).json == INACTIVE
    body = introspect(flow, offline["refresh_token"]).json
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    # And it does refresh.
    assert flow.refresh(offline["refresh_token"]).status_code == 200


def test_refresh_token_inactive_after_rotation(flow, offline):
    assert introspect(flow, offline["refresh_token"]).json["active"] is True

    second = flow.refresh(offline["refresh_token"]).json

    assert introspect(flow, offline["refresh_token"]).json == INACTIVE
    assert introspect(flow, second["refresh_token"]).json["active"] is True


# -- inactive tokens ------------------------------------------------------------------------------


def test_revoked_tokens_are_inactive(flow, offline):
    flow.http.post(
        "/malakoff/revoke",
        data={"token": offline["refresh_token"]},
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    assert introspect(flow, offline["access_token"]).json == INACTIVE
    assert introspect(flow, offline["refresh_token"]).json == INACTIVE


def test_expired_access_token_is_inactive(flow, offline, db):
    row = row_of(db, offline["access_token"])
    set_row(db, offline["access_token"], issued_at=row.issued_at - timedelta(seconds=601))

    assert introspect(flow, offline["access_token"]).json == INACTIVE


def test_expired_refresh_token_is_inactive(flow, offline, db):
    set_row(db, offline["access_token"], refresh_expires_at=utcnow() - timedelta(seconds=1))

    assert introspect(flow, offline["refresh_token"]).json == INACTIVE


def test_tokens_of_a_disabled_account_are_inactive(flow, offline, db):
    db.rollback()
    flow.account.status = "disabled"
    db.commit()

    # As at the userinfo endpoint: a resource server must not accept them either.
    assert introspect(flow, offline["access_token"]).json == INACTIVE
    assert introspect(flow, offline["refresh_token"]).json == INACTIVE


@pytest.mark.parametrize("token", ["unknown", "", "x" * 43, "x" * 500])
def test_unknown_token_is_inactive(flow, offline, token):
    response = introspect(flow, token)

    assert response.status_code == 200
    assert response.json == INACTIVE


def test_id_token_is_not_introspectable(flow, offline):
    assert introspect(flow, offline["id_token"]).json == INACTIVE


def test_token_of_another_client_is_inactive(flow, client, make, offline):
    other = Flow(client, "malakoff", make.client(), flow.account)

    assert introspect(other, offline["access_token"]).json == INACTIVE
    assert introspect(other, offline["refresh_token"]).json == INACTIVE
    # Asking did not change the token.
    assert introspect(flow, offline["access_token"]).json["active"] is True


def test_token_of_the_other_tenant_is_inactive(client, make, flow, offline):
    miel = Flow(client, "miel", make.client("miel"), make.account("miel"))
    miel_tokens = miel.tokens()

    assert introspect(flow, miel_tokens["access_token"]).json == INACTIVE
    assert introspect(miel, miel_tokens["access_token"]).json["active"] is True


# -- request errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        lambda rp: {"auth": (rp.client_id, "wrong")},
        lambda rp: {"auth": ("unknown", rp.secret)},
        lambda rp: {"data": {"client_id": rp.client_id}},
        lambda _rp: {"headers": {"Authorization": "Bearer whatever"}},
        lambda _rp: {},
    ],
    ids=["wrong-secret", "unknown-client", "client-id-only", "bearer", "none"],
)
def test_bad_client_authentication(flow, client, offline, auth):
    kwargs = auth(flow.rp)
    data = {"token": offline["access_token"], **kwargs.pop("data", {})}

    response = client.post(INTROSPECT, data=data, **kwargs)

    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "active" not in response.json
    assert "WWW-Authenticate" in response.headers


def test_missing_token_is_invalid_request(flow, offline):
    response = flow.http.post(INTROSPECT, data={}, auth=(flow.rp.client_id, flow.rp.secret))

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("hint", ["id_token", "urn:x"])
def test_unsupported_token_type_hint(flow, offline, hint):
    response = introspect(flow, offline["access_token"], token_type_hint=hint)

    assert response.status_code == 400
    assert response.json["error"] == "unsupported_token_type"


def test_introspection_only_by_post(flow, offline):
    response = flow.http.get(
        INTROSPECT,
        query_string={"token": offline["access_token"]},
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    assert response.status_code == 405


def test_introspection_with_private_key_jwt(client, make, member):
    key = RSAKey.generate_key(2048, auto_kid=True)
    rp = make.client(auth_method="private_key_jwt", jwks=KeySet([key]).as_dict(private=False))
    flow = Flow(client, "malakoff", rp, member)

    def assertion() -> dict:
        now = int(time.time())
        claims = {
            "iss": rp.client_id,
            "sub": rp.client_id,
            "aud": "http://localhost/malakoff/token",
            "jti": os.urandom(8).hex(),
            "exp": now + 60,
        }
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key),
        }

    tokens = flow.token(flow.code(), **assertion()).json

    body = client.post(INTROSPECT, data={"token": tokens["access_token"], **assertion()}).json

    assert body["active"] is True
    assert body["client_id"] == rp.client_id

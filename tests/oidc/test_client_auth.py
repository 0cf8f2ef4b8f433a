"""Client authentication at the token endpoint (RFC 6749 2.3, 3.2.1; OIDC Core 9; RFC 7523 3)."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from sqlalchemy import func, select

from idp.oidc.models import Token
from tests.flows import Flow, query

TOKEN_URL = "/malakoff/token"
AUDIENCE = "http://localhost/malakoff/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def token_count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Token))


def assert_invalid_client(response) -> None:
    assert response.status_code == 401, (response.status_code, response.data[:300])
    assert response.json["error"] == "invalid_client"
    # RFC 6749 5.2: 401 with a challenge for the scheme the client used.
    assert response.headers["WWW-Authenticate"].split()[0] == "Basic"


def code_request(flow: Flow, code: str) -> dict:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.rp.redirect_uris[0],
        "code_verifier": flow.verifier,
    }


# -- client_secret_basic ------------------------------------------------------------------------


def test_client_secret_basic(flow):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL, data=code_request(flow, code), auth=(flow.rp.client_id, flow.rp.secret)
    )

    assert response.status_code == 200
    assert "access_token" in response.json


def test_client_secret_basic_with_url_encoded_credentials(client, make, member):
    # RFC 6749 2.3.1: client_id and secret are form-urlencoded before Basic encoding.
    rp = make.client(client_id="malakoff-a:b+c")
    flow = Flow(client, "malakoff", rp, member)
    code = flow.code()
    raw = f"malakoff-a%3Ab%2Bc:{rp.secret}"
    header = "Basic " + base64.b64encode(raw.encode()).decode()

    response = client.post(
        TOKEN_URL, data=code_request(flow, code), headers={"Authorization": header}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        lambda rp: (rp.client_id, "wrong-secret"),
        lambda rp: (rp.client_id, rp.secret[:-1]),
        lambda rp: (rp.client_id, rp.secret.upper()),
        lambda rp: ("unknown-client", rp.secret),
        lambda rp: (rp.client_id, ""),
    ],
    ids=["wrong-secret", "truncated", "case", "unknown-client", "empty-secret"],
)
def test_client_secret_basic_failures(flow, db, credentials):
    code = flow.code()

    response = flow.http.post(TOKEN_URL, data=code_request(flow, code), auth=credentials(flow.rp))

    assert_invalid_client(response)
    assert 'error="invalid_client"' in response.headers["WWW-Authenticate"]
    assert token_count(db) == 0
    # Client authentication comes first: the code was not spent.
    assert flow.token(code).status_code == 200


@pytest.mark.parametrize("path", ["/malakoff/token", "/malakoff/revoke", "/malakoff/introspect",
                                  "/malakoff/par"])
def test_a_failed_authentication_names_the_methods_accepted_in_words(flow, path):
    # RFC 6749 5.2: error_description is text for the client's developer, in the body and the
    # Basic challenge alike.
    response = flow.http.post(path, data={"grant_type": "refresh_token", "refresh_token": "r",
                                          "token": "t", "response_type": "code"},
                              auth=(flow.rp.client_id, "wrong-secret"))

    assert_invalid_client(response)
    said = ("Client authentication failed (methods accepted: client_secret_basic, "
            "client_secret_post, private_key_jwt, none).")
    assert response.json["error_description"] == said
    assert f'error_description="{said}"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Bearer abc",
        "Digest username=x",
    ],
)
def test_malformed_authorization_headers(flow, db, header):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL, data=code_request(flow, code), headers={"Authorization": header}
    )

    assert_invalid_client(response)
    assert token_count(db) == 0


def test_no_client_authentication(flow, db):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL, data={**code_request(flow, code), "client_id": flow.rp.client_id}
    )

    # A confidential client may not fall back to "none" (RFC 6749 3.2.1).
    assert_invalid_client(response)
    assert token_count(db) == 0


def test_client_of_the_other_tenant_is_unknown(client, make, member, db):
    miel_rp = make.client("miel")
    flow = Flow(client, "malakoff", make.client("malakoff"), member)
    code = flow.code()

    response = client.post(
        TOKEN_URL, data=code_request(flow, code), auth=(miel_rp.client_id, miel_rp.secret)
    )

    assert_invalid_client(response)
    assert token_count(db) == 0


def test_basic_client_may_not_use_client_secret_post(flow, db):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL,
        data={
            **code_request(flow, code),
            "client_id": flow.rp.client_id,
            "client_secret": flow.rp.secret,
        },
    )

    assert_invalid_client(response)
    assert token_count(db) == 0


def test_two_authentication_methods_at_once_are_refused(flow, db):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL,
        data={
            **code_request(flow, code),
            "client_id": flow.rp.client_id,
            "client_secret": flow.rp.secret,
        },
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    # RFC 6749 2.3 and 5.2: more than one mechanism is invalid_request.
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert token_count(db) == 0


# -- client_secret_post ---------------------------------------------------------------------------


@pytest.fixture
def post_flow(client, make, member):
    return Flow(client, "malakoff", make.client(auth_method="client_secret_post"), member)


def test_client_secret_post(post_flow):
    code = post_flow.code()

    response = post_flow.token(
        code, client_id=post_flow.rp.client_id, client_secret=post_flow.rp.secret
    )

    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "credentials",
    [
        lambda rp: {"client_id": rp.client_id, "client_secret": "wrong"},
        lambda rp: {"client_id": rp.client_id},
        lambda rp: {"client_secret": rp.secret},
        lambda rp: {"client_id": "unknown", "client_secret": rp.secret},
    ],
    ids=["wrong-secret", "no-secret", "no-client-id", "unknown-client"],
)
def test_client_secret_post_failures(post_flow, db, credentials):
    code = post_flow.code()

    response = post_flow.token(code, **credentials(post_flow.rp))

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


def test_post_client_may_not_use_client_secret_basic(post_flow, db):
    code = post_flow.code()

    response = post_flow.http.post(
        TOKEN_URL,
        data=code_request(post_flow, code),
        auth=(post_flow.rp.client_id, post_flow.rp.secret),
    )

    assert_invalid_client(response)
    assert token_count(db) == 0


# -- public clients (auth method none) ------------------------------------------------------------


@pytest.fixture
def public_flow(client, make, member):
    return Flow(client, "malakoff", make.client(auth_method="none", first_party=True), member)


def test_public_client_with_pkce(public_flow):
    code = public_flow.code()

    response = public_flow.token(code, client_id=public_flow.rp.client_id)

    assert response.status_code == 200
    assert public_flow.id_token_claims(response.json["id_token"])["aud"] == [
        public_flow.rp.client_id
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": None},  # plain by default (RFC 7636 4.3)
        {"code_challenge_method": "plain"},
        {"code_challenge": None},
    ],
    ids=["no-pkce", "method-missing", "plain", "challenge-missing"],
)
def test_public_client_without_s256_pkce_is_refused_at_authorize(public_flow, overrides):
    public_flow.code()  # signed in: only the request can be at fault

    response = public_flow.authorize(**overrides)

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(public_flow.rp.redirect_uris[0] + "?")
    params = query(location)
    assert params["error"] == "invalid_request"
    assert params["iss"] == "http://localhost/malakoff"
    assert "code" not in params


def test_public_client_must_send_the_verifier(public_flow, db):
    code = public_flow.code()

    response = public_flow.token(code, verifier=None, client_id=public_flow.rp.client_id)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert token_count(db) == 0


def test_public_client_needs_its_client_id(public_flow, db):
    code = public_flow.code()

    response = public_flow.token(code)

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


def test_public_client_may_not_send_a_secret(public_flow, db):
    code = public_flow.code()

    response = public_flow.token(code, client_id=public_flow.rp.client_id, client_secret="anything")

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


# -- private_key_jwt (OIDC Core 9, RFC 7523 3) ----------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture(scope="module")
def other_rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture
def jwt_flow(client, make, member, rsa_key):
    jwks = KeySet([rsa_key]).as_dict(private=False)
    rp = make.client(auth_method="private_key_jwt", jwks=jwks)
    return Flow(client, "malakoff", rp, member)


def assertion(
    client_id: str, key, *, alg: str = "RS256", header: dict | None = None, **overrides
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": AUDIENCE,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, claims, key)


def unsigned(client_id: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": AUDIENCE,
        "jti": secrets.token_urlsafe(16),
        "exp": now + 60,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def with_assertion(value: str) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": value}


def test_private_key_jwt(jwt_flow, rsa_key):
    code = jwt_flow.code()

    response = jwt_flow.token(code, **with_assertion(assertion(jwt_flow.rp.client_id, rsa_key)))

    assert response.status_code == 200
    assert "access_token" in response.json


@pytest.mark.parametrize(
    "aud", [AUDIENCE, "http://localhost/malakoff", [AUDIENCE, "https://other"]]
)
def test_private_key_jwt_accepts_the_issuer_and_token_endpoint_as_audience(jwt_flow, rsa_key, aud):
    code = jwt_flow.code()

    response = jwt_flow.token(
        code, **with_assertion(assertion(jwt_flow.rp.client_id, rsa_key, aud=aud))
    )

    assert response.status_code == 200


def test_private_key_jwt_with_an_ec_key(client, make, member):
    key = ECKey.generate_key("P-256", auto_kid=True)
    rp = make.client(auth_method="private_key_jwt", jwks=KeySet([key]).as_dict(private=False))
    flow = Flow(client, "malakoff", rp, member)
    code = flow.code()

    response = flow.token(code, **with_assertion(assertion(rp.client_id, key, alg="ES256")))

    assert response.status_code == 200


def test_replayed_assertion_is_refused(jwt_flow, rsa_key, db):
    value = assertion(jwt_flow.rp.client_id, rsa_key)
    assert jwt_flow.token(jwt_flow.code(), **with_assertion(value)).status_code == 200
    code = query(jwt_flow.authorize().headers["Location"])["code"]

    response = jwt_flow.token(code, **with_assertion(value))

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 1


def test_jti_is_remembered_only_from_verified_assertions(jwt_flow, rsa_key, other_rsa_key):
    # A forged assertion must not burn the jti of the real client's next one.
    jti = "chosen-jti"
    forged = assertion(jwt_flow.rp.client_id, other_rsa_key, jti=jti)
    code = jwt_flow.code()
    assert jwt_flow.token(code, **with_assertion(forged)).json["error"] == "invalid_client"

    response = jwt_flow.token(
        code, **with_assertion(assertion(jwt_flow.rp.client_id, rsa_key, jti=jti))
    )

    assert response.status_code == 200


def failing_assertion(case: str, client_id: str, key, other) -> str:
    """An assertion the token endpoint must refuse, one defect at a time."""
    now = int(time.time())
    claims = {
        "aud-other-tenant": {"aud": "http://localhost/miel/token"},
        "aud-other-endpoint": {"aud": "http://localhost/malakoff/userinfo"},
        "aud-missing": {"aud": None},
        "expired": {"exp": now - 3600},
        "exp-missing": {"exp": None},
        "not-yet-valid": {"nbf": now + 3600},
        "jti-missing": {"jti": None},
        "iss-not-sub": {"iss": "someone-else"},
        "iss-missing": {"iss": None},
    }
    if case in claims:
        return assertion(client_id, key, **claims[case])
    if case == "other-key":
        return assertion(client_id, other)
    if case == "other-key-same-kid":
        return assertion(client_id, other, header={"kid": key.kid})
    if case == "alg-none":
        return unsigned(client_id)
    if case == "hs256":
        # Algorithm confusion: an HMAC over the assertion, naming the client's RSA key.
        secret = OctKey.import_key(secrets.token_bytes(32))
        return assertion(client_id, secret, alg="HS256", header={"kid": key.kid})
    if case == "bad-signature":
        return assertion(client_id, key)[:-4] + "AAAA"
    return {"garbage": "not-a-jwt", "garbage-segments": "a.b.c"}[case]


@pytest.mark.parametrize(
    "case",
    [
        "aud-other-tenant",
        "aud-other-endpoint",
        "aud-missing",
        "other-key",
        "other-key-same-kid",
        "expired",
        "exp-missing",
        "not-yet-valid",
        "jti-missing",
        "iss-not-sub",
        "iss-missing",
        "alg-none",
        "hs256",
        "bad-signature",
        "garbage",
        "garbage-segments",
    ],
)
def test_private_key_jwt_failures(jwt_flow, rsa_key, other_rsa_key, db, case):
    code = jwt_flow.code()
    value = failing_assertion(case, jwt_flow.rp.client_id, rsa_key, other_rsa_key)

    response = jwt_flow.token(code, **with_assertion(value))

    assert response.status_code in (400, 401), response.data[:300]
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0
    # Client authentication comes first: the code was not spent.
    good = assertion(jwt_flow.rp.client_id, rsa_key)
    assert jwt_flow.token(code, **with_assertion(good)).status_code == 200


def test_assertion_for_another_client(jwt_flow, make, rsa_key, db):
    other = make.client(
        auth_method="private_key_jwt", jwks=KeySet([rsa_key]).as_dict(private=False)
    )
    code = jwt_flow.code()

    # Signed properly, but for another client: the code is not theirs.
    response = jwt_flow.token(code, **with_assertion(assertion(other.client_id, rsa_key)))

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert token_count(db) == 0


def test_assertion_for_a_client_registered_for_another_method(flow, rsa_key, db):
    code = flow.code()

    response = flow.http.post(
        TOKEN_URL,
        data={
            **code_request(flow, code),
            **with_assertion(assertion(flow.rp.client_id, rsa_key)),
        },
    )

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


def test_private_key_jwt_client_without_keys(client, make, member, rsa_key, db):
    rp = make.client(auth_method="private_key_jwt", jwks=None)
    flow = Flow(client, "malakoff", rp, member)
    code = flow.code()

    response = flow.token(code, **with_assertion(assertion(rp.client_id, rsa_key)))

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


@pytest.mark.parametrize(
    "assertion_type", ["", "urn:ietf:params:oauth:grant-type:jwt-bearer", "jwt"]
)
def test_wrong_assertion_type(jwt_flow, rsa_key, db, assertion_type):
    code = jwt_flow.code()

    response = jwt_flow.token(
        code,
        client_assertion_type=assertion_type,
        client_assertion=assertion(jwt_flow.rp.client_id, rsa_key),
    )

    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"
    assert token_count(db) == 0


def test_a_removed_client_stops_authenticating_within_the_cache_bound(flow, app, runner):
    """Settings.client_cache_seconds bounds how long a removed client still authenticates;
    from the moment of removal it obtains nothing, its codes and tokens being gone."""
    cache = app.extensions["idp_oidc"].client_cache
    now = [1000.0]
    cache.clock = lambda: now[0]
    access = flow.tokens()["access_token"]

    def introspect():
        return flow.http.post("/malakoff/introspect", data={"token": access},
                              auth=(flow.rp.client_id, flow.rp.secret))

    assert introspect().json["active"] is True
    code = query(flow.authorize(prompt="none").headers["Location"])["code"]  # signed in already
    removed = runner.invoke(args=["clients", "remove", flow.rp.client_id, "--yes"])
    assert removed.exit_code == 0, removed.output
    assert introspect().json == {"active": False}
    assert flow.token(code).json["error"] == "invalid_grant"

    now[0] += app.extensions["idp"].settings.client_cache_seconds
    late = introspect()
    assert late.status_code == 401
    assert late.json["error"] == "invalid_client"

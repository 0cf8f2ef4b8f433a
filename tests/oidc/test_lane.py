"""Discovery, JWKS, UserInfo's reads, the token endpoint, introspection and revocation answered
without the application's per-request work (idp.web.lane): as the views answer them, refused as
the gate refuses, logged and counted the same; what the lane does not answer as the view would
goes on to the view."""

from __future__ import annotations

import pytest
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from sqlalchemy.exc import OperationalError

from idp.oidc import ledger
from idp.oidc.server import LaneRequest, StoredRequest
from tests.flows import Flow, query

PATHS = ["/malakoff/.well-known/openid-configuration", "/malakoff/jwks", "/miel/jwks",
         "/miel/.well-known/openid-configuration"]


def _fields(response) -> dict[str, str]:
    """Header fields, names in lower case, without the request id (new for each request)."""
    return {name.lower(): value for name, value in response.headers if name != "X-Request-ID"}


@pytest.fixture
def hooks_run(app):
    """The application's per-request hooks that ran, by path."""
    ran: list[str] = []
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: ran.append("before"))
    return ran


@pytest.mark.parametrize("path", PATHS)
def test_a_plain_read_is_answered_without_the_applications_hooks(client, hooks_run, path):
    assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
    assert hooks_run == []
    # With a query string, the application answers.
    assert client.get(path, query_string={"x": "1"}).status_code == 200
    assert hooks_run == ["before"]


@pytest.mark.parametrize("path", PATHS)
def test_the_lane_answers_what_the_view_answers(client, path):
    lane = client.get(path)
    view = client.get(path, query_string={"x": "1"})
    assert lane.data == view.data
    assert _fields(lane) == _fields(view)
    assert lane.headers["X-Request-ID"] != view.headers["X-Request-ID"]

    etag = lane.headers["ETag"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f"W/{etag}, \"other\""}):
        lane_304 = client.get(path, headers=headers)
        view_304 = client.get(path, headers=headers, query_string={"x": "1"})
        assert lane_304.status_code == view_304.status_code == 304
        assert lane_304.data == view_304.data == b""
        assert _fields(lane_304) == _fields(view_304)
    stale = client.get(path, headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.data == lane.data

    lane_head = client.head(path)
    view_head = client.head(path, query_string={"x": "1"})
    assert lane_head.data == view_head.data == b""
    assert _fields(lane_head) == _fields(view_head) == _fields(lane)


def test_the_jwks_follows_a_new_key(client, app):
    before = client.get("/malakoff/jwks")
    app.extensions["idp"].keystore.generate("ES256")
    after = client.get("/malakoff/jwks", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.json == app.extensions["idp"].keystore.public_jwks()


@pytest.mark.parametrize("path", PATHS)
def test_what_the_gate_refuses_is_refused(client, hooks_run, path):
    # A host name that is not a loopback one, over plain HTTP (the gate's rule).
    assert client.get(path, base_url="http://idp.example.org").status_code == 400
    assert client.get(path, headers={"Host": "bad host"}).status_code == 400
    # More header fields than a browser sends.
    crowded = {f"X-Field-{n}": "1" for n in range(120)}
    assert client.get(path, headers=crowded).status_code == 431
    assert hooks_run == ["before"] * 3


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_go_to_the_application(client, method):
    response = client.open("/malakoff/jwks", method=method)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_a_preflight_goes_to_the_application(client):
    response = client.options("/malakoff/jwks", headers={
        "Origin": "https://spa.example.org", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_an_unknown_tenant_is_not_found(client):
    assert client.get("/acme/jwks").status_code == 404


def test_a_trusted_proxys_request_id_is_kept(settings):
    from idp import create_app  # noqa: PLC0415 - an app behind one proxy

    app = create_app({**settings, "trusted_proxies": 1})
    client = app.test_client()
    response = client.get("/malakoff/jwks", headers={
        "X-Request-ID": "edge-42", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "idp.example.org"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "edge-42"
    refused = client.get("/malakoff/jwks", headers={"X-Forwarded-Host": "idp.example.org"},
                         base_url="http://idp.example.org")
    assert refused.status_code == 400


# -- UserInfo ---------------------------------------------------------------------------------

USERINFO = ["/malakoff/userinfo", "/miel/userinfo"]


@pytest.fixture
def bearer(make, client):
    """A valid bearer token at each tenant's UserInfo."""
    headers = {}
    for tenant in ("malakoff", "miel"):
        flow = Flow(client, tenant, make.client(tenant=tenant), make.account(tenant=tenant))
        headers[f"/{tenant}/userinfo"] = {"Authorization": f"Bearer {flow.tokens()['access_token']}"}
    return headers


@pytest.mark.parametrize("path", USERINFO)
def test_userinfo_with_a_valid_token_is_answered_as_the_view_answers(client, bearer, hooks_run, path):
    lane = client.get(path, headers=bearer[path])
    assert lane.status_code == 200
    assert hooks_run == []
    # With a query string (which UserInfo ignores), the view answers.
    view = client.get(path, headers=bearer[path], query_string={"x": "1"})
    assert hooks_run == ["before"]
    assert lane.data == view.data
    assert _fields(lane) == _fields(view)


@pytest.mark.parametrize("headers", [
    {},  # no token: the bare challenge
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic bWFsYWtvZmY6c2VjcmV0"},
    {"Authorization": "Bearer"},
    {"Origin": "https://spa.example.org"},  # with a valid token: CORS fields are the view's
])
def test_what_userinfo_refuses_or_a_cors_read_goes_to_the_view(client, bearer, hooks_run, headers):
    path = "/malakoff/userinfo"
    sent = {**bearer[path], **headers} if "Origin" in headers else headers
    response = client.get(path, headers=sent)
    assert hooks_run == ["before"]
    if "Origin" in headers:
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    else:
        assert response.status_code in (400, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_of_the_other_tenant_goes_to_the_view(client, bearer, hooks_run):
    response = client.get("/miel/userinfo", headers=bearer["/malakoff/userinfo"])
    assert response.status_code == 401
    assert hooks_run == ["before"]


def test_a_failure_in_the_lane_is_answered_by_the_error_boundary_once(client, bearer, monkeypatch):
    """The lane's error goes to the application, which answers it without a second attempt:
    a database that does not answer costs one wait, not two."""
    attempts = []

    def unreachable(*_args):
        attempts.append(1)
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ledger, "find_access_token", unreachable)
    response = client.get("/malakoff/userinfo", headers=bearer["/malakoff/userinfo"])
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert len(attempts) == 1
    monkeypatch.undo()
    assert client.get("/malakoff/userinfo", headers=bearer["/malakoff/userinfo"]).status_code == 200


# -- introspection and revocation -------------------------------------------------------------


@pytest.fixture
def tokens(make, client):
    """A relying party's credentials and three of its access tokens, at Malakoff."""
    rp = make.client()
    flow = Flow(client, "malakoff", rp, make.account())
    issued = [flow.tokens()["access_token"]]
    for _ in range(2):
        code = query(flow.authorize(prompt="none").headers["Location"])["code"]
        issued.append(flow.token(code).json["access_token"])
    return (rp.client_id, rp.secret), issued


def _post(client, path: str, auth, data, **kwargs):
    return client.post(path, data=data, auth=auth, **kwargs)


@pytest.mark.parametrize("path", ["/malakoff/introspect", "/malakoff/revoke"])
def test_a_form_is_answered_as_the_view_answers(client, tokens, hooks_run, path):
    auth, (token, other, _) = tokens
    cases = [
        (auth, {"token": token}),  # the answer to a client's own token
        (auth, {"token": other, "token_type_hint": "access_token"}),
        (auth, {"token": "unknown"}),
        (auth, {"token_type_hint": "access_token"}),  # no token: invalid_request
        (auth, {"token": token, "token_type_hint": "id_token"}),  # unsupported_token_type
        ((auth[0], "wrong secret"), {"token": token}),  # invalid_client, with its challenge
        (None, {"token": token, "client_id": auth[0], "client_secret": auth[1]}),
    ]
    for credentials, data in cases:
        hooks_run.clear()
        lane = _post(client, path, credentials, data)
        assert hooks_run == [], data
        # With a query string, the view answers.
        view = _post(client, path, credentials, data, query_string={"x": "1"})
        assert hooks_run == ["before"], data
        assert (lane.status_code, lane.data) == (view.status_code, view.data), data
        assert _fields(lane) == _fields(view), data


def test_revocation_in_the_lane_revokes(client, tokens):
    auth, (token, *_) = tokens
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/malakoff/userinfo", headers=bearer).status_code == 200
    assert _post(client, "/malakoff/revoke", auth, {"token": token}).status_code == 200
    assert client.get("/malakoff/userinfo", headers=bearer).status_code == 401
    assert _post(client, "/malakoff/introspect", auth, {"token": token}).json == {"active": False}


@pytest.mark.parametrize(("body", "content_type"), [
    ("token=a&token=b", None),  # repeated (RFC 6749 3.2)
    ("token=a%00b", None),  # a control character
    ("token=" + "a" * 70_000, None),  # longer than the lane reads
    ('{"token": "a"}', "application/json"),
    ("token=a", "multipart/form-data; boundary=x"),
])
def test_what_the_lane_does_not_read_is_the_applications(client, tokens, hooks_run, body, content_type):
    auth, _ = tokens
    for path in ("/malakoff/introspect", "/malakoff/revoke"):
        hooks_run.clear()
        lane = client.post(path, data=body.encode(), auth=auth,
                           content_type=content_type or "application/x-www-form-urlencoded")
        view = client.post(path, data=body.encode(), auth=auth, query_string={"x": "1"},
                           content_type=content_type or "application/x-www-form-urlencoded")
        assert hooks_run == ["before", "before"]
        assert (lane.status_code, lane.data) == (view.status_code, view.data)


def test_a_form_the_lane_declines_reaches_the_application_whole(client, tokens):
    """The lane reads the body, declines it (a quote in grant_type: the gate lets it through,
    but it is not a value the protocol's answers may echo), and puts it back: the application's
    answer names the parameters, as it does for a form it read itself."""
    auth, (token, *_) = tokens
    for path in ("/malakoff/introspect", "/malakoff/revoke"):
        refused = _post(client, path, auth, {"token": token, "grant_type": 'a"b'})
        assert refused.status_code == 400
        assert refused.json["error_description"] == "Malformed parameters."


def test_a_failure_in_a_forms_lane_is_answered_by_the_error_boundary_once(client, tokens, monkeypatch):
    auth, (token, *_) = tokens
    attempts = []

    def unreachable(*_args, **_kwargs):
        attempts.append(1)
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ledger, "find_token", unreachable)
    response = _post(client, "/malakoff/introspect", auth, {"token": token})
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert len(attempts) == 1


# -- the token endpoint -----------------------------------------------------------------------


@pytest.fixture
def token_flow(make, client):
    """A relying party at Malakoff, its member signed in (a code for each ``code()``)."""
    flow = Flow(client, "malakoff", make.client(), make.account())
    flow.code()
    return flow


def _next_code(flow) -> str:
    """A code for the member signed in, with a refresh token (offline_access)."""
    location = flow.authorize(prompt="none", scope="openid profile email member offline_access")
    return query(location.headers["Location"])["code"]


def _redeem(flow, code: str, **kwargs):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.rp.redirect_uris[0],
            "code_verifier": flow.verifier}
    return _post(flow.http, "/malakoff/token", (flow.rp.client_id, flow.rp.secret), data, **kwargs)


def test_grants_are_answered_in_the_lane_with_the_views_fields(token_flow, hooks_run):
    flow = token_flow
    code = _next_code(flow)
    hooks_run.clear()
    lane = _redeem(flow, code)
    assert lane.status_code == 200 and hooks_run == []
    refreshed = flow.refresh(lane.json["refresh_token"])
    assert refreshed.status_code == 200 and hooks_run == []
    assert set(refreshed.json) == set(lane.json) >= {"access_token", "id_token", "refresh_token"}
    # With a query string, the view answers: the same fields, tokens of the same kinds.
    code = _next_code(flow)
    hooks_run.clear()
    view = _redeem(flow, code, query_string={"x": "1"})
    assert view.status_code == 200 and hooks_run == ["before"]
    assert _fields(lane) == _fields(view)
    assert set(lane.json) == set(view.json)
    claims = [flow.id_token_claims(answer.json["id_token"]) for answer in (lane, view)]
    assert claims[0].keys() == claims[1].keys()
    # What was issued in the lane is a token like any other.
    bearer = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 200
    # A code is redeemed once, whichever answers.
    assert _redeem(flow, code).json["error"] == "invalid_grant"


def test_a_refused_grant_is_answered_in_the_lane_as_the_view_answers(token_flow, hooks_run):
    flow = token_flow
    auth = (flow.rp.client_id, flow.rp.secret)
    cases = [
        (auth, {"grant_type": "authorization_code", "code": "unknown",
                "redirect_uri": flow.rp.redirect_uris[0], "code_verifier": flow.verifier}),
        (auth, {"grant_type": "refresh_token", "refresh_token": "unknown"}),
        (auth, {"grant_type": "password", "username": "a", "password": "b"}),
        (auth, {"code": "unknown"}),  # no grant_type
        ((auth[0], "wrong secret"), {"grant_type": "refresh_token", "refresh_token": "unknown"}),
        (None, {"grant_type": "refresh_token", "refresh_token": "unknown"}),
    ]
    for credentials, data in cases:
        hooks_run.clear()
        lane = _post(flow.http, "/malakoff/token", credentials, data)
        assert hooks_run == [], data
        view = _post(flow.http, "/malakoff/token", credentials, data, query_string={"x": "1"})
        assert hooks_run == ["before"], data
        assert lane.status_code in (400, 401), data
        assert (lane.status_code, lane.data) == (view.status_code, view.data), data
        assert _fields(lane) == _fields(view), data


def test_a_cors_token_request_goes_to_the_view(token_flow, hooks_run):
    flow = token_flow
    code = _next_code(flow)
    hooks_run.clear()
    response = _redeem(flow, code, headers={"Origin": "https://spa.example.org"})
    assert response.status_code == 200
    assert hooks_run == ["before"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_failure_in_the_token_lane_is_answered_by_the_error_boundary_once(token_flow, monkeypatch):
    flow = token_flow
    code = _next_code(flow)
    attempts = []

    def unreachable(*_args, **_kwargs):
        attempts.append(1)
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ledger, "redeem_code", unreachable)
    response = _redeem(flow, code)
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert len(attempts) == 1
    monkeypatch.undo()
    assert _redeem(flow, code).status_code == 200


def _environ(scheme: str, host: str) -> dict:
    return {"wsgi.url_scheme": scheme, "HTTP_HOST": host, "REQUEST_METHOD": "POST",
            "PATH_INFO": "/malakoff/introspect", "HTTP_AUTHORIZATION": "Basic eDp5"}


def test_a_lane_request_is_what_authlib_makes_of_it():
    """Every attribute Authlib's request sets as it is made, with the values it gives them (a
    newer Authlib setting another would fail here)."""
    made = LaneRequest(_environ("https", "idp.example"), [("token", "t")])
    authlib = OAuth2Request("POST", "https://idp.example/malakoff/introspect",
                            headers={"Authorization": "Basic eDp5"})
    authlib.payload = made.payload
    own = {"_form"}
    assert set(vars(made)) - own == set(vars(authlib))
    for name, value in vars(authlib).items():
        if name != "headers":
            assert getattr(made, name) == value, name
    assert made.headers["Authorization"] == "Basic eDp5"
    assert made.form == {"token": "t"} and made.args == {}


def test_a_replayed_authorization_request_is_what_authlib_makes_of_it():
    """The same for an authorization request replayed from its interaction (its own
    ``authentication`` aside)."""
    params = [["client_id", "portal"], ["scope", "openid"]]
    made = StoredRequest(_environ("https", "idp.example"), params)
    authlib = OAuth2Request("GET", "https://idp.example/malakoff/introspect", headers={})
    authlib.payload = made.payload
    assert set(vars(made)) - {"authentication"} == set(vars(authlib))
    for name, value in vars(authlib).items():
        assert getattr(made, name) == value, name
    assert made.args == {"client_id": "portal", "scope": "openid"} and made.form == {}


@pytest.mark.parametrize("kind", [LaneRequest, StoredRequest])
@pytest.mark.parametrize(("scheme", "host", "secure"), [
    ("https", "idp.example", True), ("http", "127.0.0.1:8000", True), ("http", "localhost", True),
    ("http", "[::1]:8000", True), ("http", "idp.example", False), ("http", "10.0.0.1", False)])
def test_a_served_request_checks_its_transport_as_authlib_does(kind, scheme, host, secure):
    """Authlib's outcome, whether it was kept from an earlier request to the same host or not."""
    for _ in range(2):
        if secure:
            kind(_environ(scheme, host), [])
            OAuth2Request("POST", f"{scheme}://{host}/malakoff/introspect")
        else:
            with pytest.raises(InsecureTransportError):
                kind(_environ(scheme, host), [])
            with pytest.raises(InsecureTransportError):
                OAuth2Request("POST", f"{scheme}://{host}/malakoff/introspect")

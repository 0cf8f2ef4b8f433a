"""Authorization endpoint errors: a page when the client or redirect URI is not
trusted (RFC 6749 4.1.2.1), otherwise a redirect with the error, state and iss."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from tests.flows import Flow, query


def test_missing_client_id_shows_a_page(flow):
    response = flow.authorize(client_id=None)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"invalid_client" in response.data


def test_unknown_client_shows_a_page(flow):
    response = flow.authorize(client_id="nobody")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_the_page_tells_the_member_what_to_do_in_french_and_echoes_nothing(flow):
    unknown = flow.authorize(client_id="nobody").get_data(as_text=True)
    assert "Le site qui vous a dirigé ici n’est pas reconnu." in unknown
    assert "<code>invalid_client</code>" in unknown
    assert "does not exist" not in unknown

    elsewhere = flow.authorize(redirect_uri="https://evil.example.org/callback").get_data(as_text=True)
    alert = elsewhere[elsewhere.index('class="alert alert-error"'):]
    alert = alert[:alert.index("</div>")]
    assert "La demande transmise par votre espace n’est pas valide." in alert
    assert "evil.example.org" not in alert
    assert "not supported" not in elsewhere
    assert "<code>invalid_request</code>" in elsewhere


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example.org/callback",
    "https://rp.example.org/callback/",          # trailing slash: not an exact match
    "https://rp.example.org/callback?x=1",
    "HTTPS://RP.EXAMPLE.ORG/callback",
    None,
])
def test_redirect_uri_must_match_exactly(flow, redirect_uri):
    response = flow.authorize(redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_client_of_the_other_tenant_is_unknown(client, make, member):
    miel_rp = make.client("miel")
    flow = Flow(client, "malakoff", miel_rp, member)
    response = flow.authorize()
    assert response.status_code == 400
    assert "Location" not in response.headers


def _error(response) -> dict:
    assert response.status_code in (302, 303), response.data[:500]
    location = response.headers["Location"]
    assert location.startswith("https://rp.example.org/callback?")
    return query(location)


@pytest.mark.parametrize(("overrides", "code"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "profile email"}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://rp.example.org/req"}, "request_uri_not_supported"),
    ({"registration": "{}"}, "registration_not_supported"),
    ({"claims": "not json"}, "invalid_request"),
    ({"claims": "[1, 2]"}, "invalid_request"),
    ({"claims": '{"id_token": "email"}'}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"response_mode": "web_message"}, "invalid_request"),
    ({"id_token_hint": "not-a-jwt"}, "invalid_request"),
])
def test_invalid_requests_redirect_with_the_error(flow, overrides, code):
    params = _error(flow.authorize(**overrides))
    assert params["error"] == code
    assert params["state"].startswith("st-")
    assert params["iss"] == "http://localhost/malakoff"
    assert "code" not in params


def _repeated(flow, name: str, value: str | None = None, method: str = "GET"):
    """The flow's authorization request with ``name`` given a second time: as ``value``, or as
    the same value again."""
    params = flow.params()
    repeated = MultiDict([*params.items(), (name, params[name] if value is None else value)])
    if method == "POST":
        return flow.http.post("/malakoff/authorize", data=repeated)
    return flow.http.get("/malakoff/authorize", query_string=repeated)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("name", "value"), [
    ("scope", "openid"),
    ("scope", None),
    ("response_type", None),
    ("nonce", "n-other"),
    ("code_challenge", None),
    ("code_challenge_method", None),
])
def test_a_repeated_parameter_is_refused_to_the_client(flow, method, name, value):
    # RFC 6749 3.1: parameters MUST NOT be repeated; the client and its redirect URI are valid
    # and single, so the error goes to the client (4.1.2.1), with its state.
    params = _error(_repeated(flow, name, value, method))
    assert params["error"] == "invalid_request"
    assert params["state"].startswith("st-")
    assert params["iss"] == "http://localhost/malakoff"
    assert "code" not in params


@pytest.mark.parametrize("value", ["st-other", None])
def test_a_repeated_state_is_refused_to_the_client_without_a_state(flow, value):
    # OIDC Core 3.1.2.6: the state is returned as the client sent it, which cannot be told here.
    params = _error(_repeated(flow, "state", value))
    assert params["error"] == "invalid_request"
    assert "state" not in params
    assert params["iss"] == "http://localhost/malakoff"


def test_a_repeated_response_mode_is_refused_in_the_default_mode(flow):
    response = flow.http.get("/malakoff/authorize", query_string=MultiDict([
        *flow.params().items(), ("response_mode", "form_post"), ("response_mode", "fragment")]))
    assert _error(response)["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_a_repeated_client_id_or_redirect_uri_shows_a_page(flow, method, name):
    # RFC 6749 4.1.2.1: which client, or where to send the error, is in doubt: never a redirect,
    # even when both values are the registered ones.
    response = _repeated(flow, name, method=method)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"<code>invalid_request</code>" in response.data


def test_a_repeated_parameter_gets_a_signed_in_member_no_code(flow):
    flow.sign_in()
    params = _error(_repeated(flow, "scope", "openid email"))
    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_public_client_must_use_pkce(client, make, member):
    public = make.client(auth_method="none")
    flow = Flow(client, "malakoff", public, member)
    params = _error(flow.authorize(code_challenge=None, code_challenge_method=None))
    assert params["error"] == "invalid_request"


def test_confidential_client_must_use_pkce_too(flow):
    # RFC 9700 2.1.1; tests/oidc/test_pkce.py has the per-client exemption.
    params = _error(flow.authorize(code_challenge=None, code_challenge_method=None))
    assert params["error"] == "invalid_request"


@pytest.mark.parametrize("scope", ["openid admin", "openid address email", "openid email address"])
def test_unknown_scope_values_are_ignored(flow, scope):
    # OIDC Core 3.1.2.1: scope values that are not understood SHOULD be ignored.
    tokens = flow.tokens(scope=scope)
    expected = "openid email" if "email" in scope else "openid"
    assert tokens["scope"] == expected
    introspected = flow.http.post("/malakoff/introspect", data={"token": tokens["access_token"]},
                                  auth=(flow.rp.client_id, flow.rp.secret)).json
    assert introspected["scope"] == expected


def test_only_unknown_scope_values_still_need_openid(flow):
    params = _error(flow.authorize(scope="address admin"))
    assert params["error"] == "invalid_request"


def test_unknown_parameters_are_ignored(flow):
    response = flow.sign_in(foo="bar", display="touch")
    assert "code" in query(response.headers["Location"])


def test_scope_outside_the_clients_allowance_is_not_granted(client, make, member):
    narrow = make.client(scopes=("openid", "email"))
    flow = Flow(client, "malakoff", narrow, member)
    tokens = flow.token(flow.code(scope="openid email phone")).json
    assert tokens["scope"] == "openid email"
    claims = flow.id_token_claims(tokens["id_token"])
    assert "phone_number" not in claims

"""The demo relying-party portal, driven through its test client.

The provider is a fake answering the portal's back-channel calls (discovery,
JWKS, pushed authorization requests, token, userinfo); the front channel (authorize, end session) is played
by the tests, which read the portal's redirects and build the callbacks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from idp.demo.portal import create_portal

ISSUER = "http://localhost:5000/malakoff"
BASE_URL = "http://localhost:5001"
CLIENT_ID = "portal-malakoff"
CLIENT_SECRET = "s3cret-value"
AUTHORIZE = f"{ISSUER}/authorize"
END_SESSION = f"{ISSUER}/logout"


@pytest.fixture(scope="module")
def signing_key():
    return RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})


class FakeProvider:
    """Answers the portal's back-channel requests the way the provider would."""

    def __init__(self, key: RSAKey) -> None:
        self.key = key
        self.requests: list[requests.PreparedRequest] = []
        self.grants: dict[str, dict] = {}
        self.pushed: dict[str, dict] = {}
        self.id_token_overrides: dict = {}
        self.refresh_count = 0
        self.down = False

    # --- front channel, played by the tests ---------------------------------

    def request_of(self, authorize_url: str) -> dict[str, str]:
        """The authorization request the browser was sent to: pushed, it has only a reference."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert set(query) == {"client_id", "request_uri"}, query
        assert query["client_id"] == CLIENT_ID
        return self.pushed[query["request_uri"]]

    def approve(self, authorize_url: str, code: str = "code-1") -> str:
        """Accept an authorization request; return the callback's query string."""
        query = self.request_of(authorize_url)
        self.grants[code] = query
        return urlencode({"code": code, "state": query["state"], "iss": ISSUER})

    # --- back channel ---------------------------------------------------------

    def send(self, request: requests.PreparedRequest) -> requests.Response:
        if self.down:
            raise requests.ConnectionError("connection refused")
        self.requests.append(request)
        path = urlsplit(request.url).path
        if path == "/malakoff/.well-known/openid-configuration":
            return _json(request, self.discovery())
        if path == "/malakoff/jwks":
            return _json(request, KeySet([self.key]).as_dict(private=False))
        if path == "/malakoff/token":
            return self.token(request)
        if path == "/malakoff/par":
            return self.push(request)
        if path == "/malakoff/userinfo":
            return _json(
                request,
                {
                    "sub": "acc-123",
                    "given_name": "Camille",
                    "family_name": "Martin",
                    "member_number": "12345678",
                },
            )
        return _json(request, {"error": "not_found"}, status=404)

    @staticmethod
    def discovery() -> dict:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": AUTHORIZE,
            "token_endpoint": f"{ISSUER}/token",
            "pushed_authorization_request_endpoint": f"{ISSUER}/par",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "jwks_uri": f"{ISSUER}/jwks",
            "end_session_endpoint": END_SESSION,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "authorization_response_iss_parameter_supported": True,
        }

    def push(self, request: requests.PreparedRequest) -> requests.Response:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return _json(request, {"error": "invalid_client"}, status=401)
        request_uri = f"urn:ietf:params:oauth:request_uri:{len(self.pushed)}"
        self.pushed[request_uri] = {k: v[0] for k, v in parse_qs(request.body).items()}
        return _json(request, {"request_uri": request_uri, "expires_in": 60}, status=201)

    def token(self, request: requests.PreparedRequest) -> requests.Response:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        if form["grant_type"] == "authorization_code":
            grant = self.grants.pop(form["code"])
            return _json(request, self.tokens(nonce=grant["nonce"], refresh_token="rt-1"))
        self.refresh_count += 1
        return _json(request, self.tokens(nonce=None, refresh_token=f"rt-{self.refresh_count + 1}"))

    def tokens(self, *, nonce: str | None, refresh_token: str) -> dict:
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": "acc-123", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
            "auth_time": now - 5, "acr": "urn:idp:acr:mfa", "amr": ["pwd", "otp"],
            "given_name": "Camille", "member_number": "12345678",
            "email": "camille.martin@example.fr",
        }  # fmt: skip
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.id_token_overrides)
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)
        return {
            "access_token": f"at-{refresh_token}",
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": refresh_token,
            "id_token": id_token,
            "scope": "openid profile email phone member offline_access",
        }

    def calls_to(self, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.requests if urlsplit(r.url).path == f"/malakoff{path}"]


def _json(request, body: dict, status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.encoding = "utf-8"
    response.url = request.url
    response.request = request
    return response


@pytest.fixture
def provider(monkeypatch, signing_key):
    fake = FakeProvider(signing_key)
    monkeypatch.setattr(
        requests.Session, "send", lambda _session, request, **_kw: fake.send(request)
    )
    return fake


def _portal(**overrides):
    options = {
        "tenant": "malakoff",
        "brand": "Malakoff Humanis",
        "portal_name": "Espace Client",
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "base_url": BASE_URL,
    }
    options.update(overrides)
    return create_portal(**options)


@pytest.fixture
def portal(provider):
    app = _portal()
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(portal):
    return portal.test_client()


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _sign_in(client, provider) -> None:
    callback = provider.approve(client.get("/login").headers["Location"])
    response = client.get(f"/callback?{callback}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


# --- signed out ----------------------------------------------------------------


def test_signed_out_home_shows_the_sign_in_button(client, provider):
    response = client.get("/")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<html lang="fr">' in page
    assert page.count("<h1") == 1
    assert "Malakoff Humanis" in page
    assert "Espace Client" in page
    assert '<a class="button" href="/login">Se connecter</a>' in page
    assert f'href="{ISSUER}/register">Créer mon compte</a>' in page
    assert '<link rel="stylesheet" href="/portal.css">' in page
    assert "<style" not in page
    assert " style=" not in page
    assert provider.requests == []  # the home page never calls the provider


def test_pages_carry_security_headers(client, provider):
    headers = client.get("/").headers

    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "form-action 'self' http://localhost:5000" in headers["Content-Security-Policy"]


def test_stylesheet_uses_the_brand_colour(provider):
    client = _portal(tenant="miel", primary_color="#7a4a00").test_client()

    response = client.get("/portal.css")

    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert "background: #7a4a00" in response.get_data(as_text=True)


@pytest.mark.parametrize("color", ["blue", "#123", "#00539b; } body { color: red", ""])
def test_a_colour_that_is_not_hex_is_refused(color):
    with pytest.raises(ValueError, match="primary_color"):
        _portal(primary_color=color)


def test_each_tenant_has_its_own_session_cookie_and_key(provider):
    malakoff, miel = _portal(), _portal(tenant="miel")

    cookies = []
    for app in (malakoff, miel):
        response = app.test_client().get("/login")
        cookies.append(response.headers["Set-Cookie"].split("=", 1)[0])

    assert cookies == ["portal-malakoff", "portal-miel"]
    assert malakoff.secret_key != miel.secret_key


# --- authorization request --------------------------------------------------------


def test_login_pushes_the_request_with_pkce_s256_then_redirects_with_its_reference(client, provider):
    response = client.get("/login")

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{AUTHORIZE}?")
    assert len(provider.calls_to("/par")) == 1
    query = provider.request_of(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{BASE_URL}/callback"
    assert query["scope"] == "openid profile email phone member offline_access"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert len(query["state"]) >= 20
    assert len(query["nonce"]) >= 20


def test_each_login_gets_a_fresh_state_nonce_and_challenge(client, provider):
    first = provider.request_of(client.get("/login").headers["Location"])
    second = provider.request_of(client.get("/login").headers["Location"])

    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_abandoned_logins_do_not_pile_up_in_the_cookie(portal, client, provider):
    for _ in range(6):
        location = client.get("/login").headers["Location"]

    cookie = client.get_cookie("portal-malakoff").value
    contents = portal.session_interface.get_signing_serializer(portal).loads(cookie)
    assert len([key for key in contents if key.startswith("_state_idp_")]) == 3  # 2 + newest
    assert f"_state_idp_{provider.request_of(location)['state']}" in contents


def test_login_passes_step_up_parameters_through(client, provider):
    response = client.get("/login?acr_values=urn:idp:acr:mfa&prompt=login&foo=bar")

    query = provider.request_of(response.headers["Location"])
    assert query["acr_values"] == "urn:idp:acr:mfa"
    assert query["prompt"] == "login"
    assert "foo" not in query


def test_a_refused_push_is_shown_and_the_browser_stays(provider):
    client = _portal(client_secret="not-the-secret").test_client()

    response = client.get("/login")

    assert response.status_code == 400
    assert "invalid_client" in response.get_data(as_text=True)
    assert "Location" not in response.headers


def test_login_when_the_provider_is_down_shows_a_page(client, provider):
    provider.down = True

    response = client.get("/login")

    assert response.status_code == 502
    assert "temporarily_unavailable" in response.get_data(as_text=True)


# --- callback ------------------------------------------------------------------------


def test_callback_error_is_shown_without_crashing(client, provider):
    state = provider.request_of(client.get("/login").headers["Location"])["state"]

    response = client.get(
        "/callback?"
        + urlencode(
            {
                "error": "access_denied",
                "error_description": "L’utilisateur a annulé",
                "state": state,
                "iss": ISSUER,
            }
        )
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert page.count("<h1") == 1
    assert '<code id="error-code">access_denied</code>' in page
    assert "L’utilisateur a annulé" in page
    assert provider.calls_to("/token") == []


def test_callback_error_with_an_unknown_state_is_shown_too(client, provider):
    response = client.get(f"/callback?error=access_denied&state=unknown-state&iss={ISSUER}")

    assert response.status_code == 400
    assert "access_denied" in response.get_data(as_text=True)


def test_callback_with_an_unknown_state_is_refused(client, provider):
    client.get("/login")

    response = client.get(f"/callback?code=code-1&state=forged&iss={ISSUER}")

    assert response.status_code == 400
    assert "mismatching_state" in response.get_data(as_text=True)
    assert provider.calls_to("/token") == []


@pytest.mark.parametrize("iss", ["http://localhost:5000/miel", None])
def test_callback_from_another_issuer_is_refused(client, provider, iss):
    # RFC 9207: the provider announces the iss parameter, so a wrong or missing one is refused.
    callback = _query("?" + provider.approve(client.get("/login").headers["Location"]))
    if iss is None:
        del callback["iss"]
    else:
        callback["iss"] = iss

    response = client.get(f"/callback?{urlencode(callback)}")

    assert response.status_code == 400
    assert "issuer_mismatch" in response.get_data(as_text=True)
    assert provider.calls_to("/token") == []


def test_callback_exchanges_the_code_with_pkce_and_basic_auth(client, provider):
    authorize = client.get("/login").headers["Location"]
    challenge = provider.request_of(authorize)["code_challenge"]

    client.get(f"/callback?{provider.approve(authorize)}")

    (request,) = provider.calls_to("/token")
    form = {k: v[0] for k, v in parse_qs(request.body).items()}
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "code-1"
    assert form["redirect_uri"] == f"{BASE_URL}/callback"
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {basic}"
    assert "client_secret" not in form


def test_signed_in_home_shows_the_claims_and_userinfo(client, provider):
    _sign_in(client, provider)

    page = client.get("/").get_data(as_text=True)
    assert "Bonjour Camille" in page
    assert page.count("<h1") == 1
    for claim, value in [
        ("sub", "acc-123"),
        ("iss", ISSUER),
        ("aud", CLIENT_ID),
        ("acr", "urn:idp:acr:mfa"),
        ("amr", "pwd, otp"),
        ("member_number", "12345678"),
        ("email", "camille.martin@example.fr"),
    ]:
        assert f'<th scope="row"><code>{claim}</code></th><td>{value}</td>' in page
    assert '<th scope="row"><code>family_name</code></th><td>Martin</td>' in page  # userinfo
    # The request was pushed (RFC 9126): its reference is shown.
    assert "<code>urn:ietf:params:oauth:request_uri:0</code>" in page
    assert "60 s, une seule utilisation" in page
    assert "Rafraîchir les jetons" in page
    assert "Se déconnecter" in page
    assert "Se connecter</a>" not in page
    (userinfo,) = provider.calls_to("/userinfo")
    assert userinfo.headers["Authorization"] == "Bearer at-rt-1"


def test_the_session_cookie_carries_no_token(portal, client, provider):
    _sign_in(client, provider)

    cookie = client.get_cookie("portal-malakoff").value
    contents = portal.session_interface.get_signing_serializer(portal).loads(cookie)
    assert set(contents) == {"handle", "csrf"}
    assert "rt-1" not in json.dumps(contents)


@pytest.mark.parametrize(
    "override",
    [{"nonce": "replayed"}, {"aud": "another-client"}, {"iss": "http://localhost:5000/miel"}],
)
def test_an_invalid_id_token_is_refused(client, provider, override):
    provider.id_token_overrides = override
    authorize = client.get("/login").headers["Location"]

    response = client.get(f"/callback?{provider.approve(authorize)}")

    assert response.status_code == 400
    assert "invalid_id_token" in response.get_data(as_text=True)
    assert "Se connecter</a>" in client.get("/").get_data(as_text=True)


def test_a_callback_cannot_be_replayed(client, provider):
    callback = provider.approve(client.get("/login").headers["Location"])
    client.get(f"/callback?{callback}")

    response = client.get(f"/callback?{callback}")

    assert response.status_code == 400
    assert "mismatching_state" in response.get_data(as_text=True)


# --- refresh -------------------------------------------------------------------------


def test_refresh_uses_the_refresh_token_grant_and_shows_the_new_expiry(client, provider):
    _sign_in(client, provider)
    csrf = _csrf(client.get("/").get_data(as_text=True))

    response = client.post("/refresh", data={"csrf_token": csrf})

    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "Jetons rafraîchis." in page
    assert "Le nouveau jeton d’accès expire le" in page
    assert "Dernier rafraîchissement" in page
    (request,) = [r for r in provider.calls_to("/token") if "refresh_token" in r.body]
    form = {k: v[0] for k, v in parse_qs(request.body).items()}
    assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert request.headers["Authorization"].startswith("Basic ")
    # The rotated refresh token is the one used next time.
    client.post("/refresh", data={"csrf_token": csrf})
    assert "refresh_token=rt-2" in provider.calls_to("/token")[-1].body


def test_refresh_failure_is_reported(client, provider, monkeypatch):
    _sign_in(client, provider)
    csrf = _csrf(client.get("/").get_data(as_text=True))
    monkeypatch.setattr(
        provider, "token", lambda request: _json(request, {"error": "invalid_grant"}, status=400)
    )

    response = client.post("/refresh", data={"csrf_token": csrf})

    assert response.status_code == 303
    assert "Le rafraîchissement a échoué\u00a0: invalid_grant" in client.get("/").get_data(as_text=True)


def test_refresh_without_the_csrf_token_is_refused(client, provider):
    _sign_in(client, provider)

    response = client.post("/refresh")

    assert response.status_code == 400
    assert not [r for r in provider.calls_to("/token") if "refresh_token" in r.body]


# --- logout --------------------------------------------------------------------------


def test_logout_redirects_to_the_end_session_endpoint(client, provider):
    _sign_in(client, provider)

    response = client.post("/logout")

    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"{END_SESSION}?")
    query = _query(location)
    assert query["post_logout_redirect_uri"] == f"{BASE_URL}/"
    assert query["client_id"] == CLIENT_ID
    assert jwt.decode(query["id_token_hint"], provider.key).claims["sub"] == "acc-123"
    # Back from the provider: signed out, and told so.
    page = client.get(f"/?state={query['state']}").get_data(as_text=True)
    assert "Déconnexion réussie" in page
    assert "Se connecter</a>" in page


def test_logout_by_get_when_signed_out_still_reaches_the_provider(client, provider):
    response = client.get("/logout")

    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{END_SESSION}?")
    assert "id_token_hint" not in _query(response.headers["Location"])


# --- back-channel logout ---------------------------------------------------------

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _logout_token(key, *, header=None, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": "j-1",
              "sub": "acc-123", "sid": "sid-1", "events": {LOGOUT_EVENT: {}}}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": "RS256", "kid": "test-key", "typ": "logout+jwt", **(header or {})},
                      claims, key)


def test_a_logout_token_signs_the_member_out_and_the_page_says_so(client, provider, signing_key):
    provider.id_token_overrides = {"sid": "sid-1"}
    _sign_in(client, provider)
    other = client.application.test_client()
    provider.id_token_overrides = {"sid": "sid-2"}
    _sign_in(other, provider)

    answer = client.application.test_client().post(
        "/backchannel-logout", data={"logout_token": _logout_token(signing_key)})
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"

    page = client.get("/").get_data(as_text=True)
    assert "Le fournisseur d’identité a fermé votre session à" in page
    assert "Se connecter</a>" in page
    assert "Notifications de déconnexion reçues" in page and "<code>sid-1…</code>" in page
    # The other session of the same member (another sid) is still signed in.
    assert "Bonjour Camille" in other.get("/").get_data(as_text=True)


def test_a_logout_token_without_sid_ends_every_session_of_its_subject(client, provider, signing_key):
    provider.id_token_overrides = {"sid": "sid-1"}
    _sign_in(client, provider)
    token = _logout_token(signing_key, sid=None)
    assert client.post("/backchannel-logout", data={"logout_token": token}).status_code == 200
    assert "Se connecter</a>" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("change", [
    {"header": {"typ": "JWT"}},
    {"aud": "another-client"},
    {"iss": "http://localhost:5000/miel"},
    {"nonce": "n-1"},
    {"events": {"http://example.org/other": {}}},
    {"events": None},
    {"exp": int(time.time()) - 600},
    {"jti": None},
    {"sid": None, "sub": None},
    {"key": "other"},
])
def test_an_invalid_logout_token_is_refused_and_changes_nothing(client, provider, signing_key, change):
    provider.id_token_overrides = {"sid": "sid-1"}
    _sign_in(client, provider)
    change = dict(change)
    key = signing_key
    if change.pop("key", None):
        key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    token = _logout_token(key, **change)
    answer = client.post("/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_request"
    assert "Bonjour Camille" in client.get("/").get_data(as_text=True)


def test_a_missing_logout_token_is_refused(client, provider):
    assert client.post("/backchannel-logout", data={}).status_code == 400

"""Pushed authorization requests (RFC 9126): the push endpoint, its request_uri at /authorize,
and clients that must push their requests."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select

from idp.oidc.models import Client
from tests.flows import Flow, query, sign_in_over

PAR = "/malakoff/par"
REQUEST_URI = re.compile(r"urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{43}")


def push(flow: Flow, *, auth: bool = True, **overrides):
    """The flow's authorization request, pushed by its client."""
    data = flow.params(**overrides)
    return flow.http.post(PAR, data=data, **(flow.client_auth() if auth else {}))


def pushed_uri(flow: Flow, **overrides) -> str:
    response = push(flow, **overrides)
    assert response.status_code == 201, response.json
    return response.json["request_uri"]


def authorize_pushed(flow: Flow, request_uri: str, client_id: str | None = None, **extra):
    return flow.http.get("/malakoff/authorize", query_string={
        "client_id": client_id or flow.rp.client_id, "request_uri": request_uri, **extra})


def refused_page(response, code: str = "invalid_request_uri") -> None:
    assert response.status_code == 400, response.data[:300]
    assert "Location" not in response.headers
    assert code.encode() in response.data


def test_pushed_request_signs_in_and_issues_tokens(flow):
    response = push(flow, state="st-pushed", nonce="n-pushed")

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.json) == {"request_uri", "expires_in"}
    assert REQUEST_URI.fullmatch(response.json["request_uri"])
    assert 60 <= response.json["expires_in"] <= 90
    signed_in = flow.login(authorize_pushed(flow, response.json["request_uri"]))
    assert signed_in.headers["Location"].startswith("https://rp.example.org/callback?")
    params = query(signed_in.headers["Location"])
    assert params["state"] == "st-pushed"
    assert params["iss"] == "http://localhost/malakoff"
    tokens = flow.token(params["code"])
    assert tokens.status_code == 200, tokens.json
    assert flow.id_token_claims(tokens.json["id_token"])["nonce"] == "n-pushed"


def test_client_id_may_be_left_to_the_client_authentication(flow):
    request_uri = pushed_uri(flow, client_id=None)

    response = flow.login(authorize_pushed(flow, request_uri))

    assert "code" in query(response.headers["Location"])


def test_a_public_client_pushes_with_its_client_id_and_pkce(client, make, member):
    flow = Flow(client, "malakoff", make.client(auth_method="none"), member)

    response = flow.login(authorize_pushed(flow, pushed_uri(flow)))

    code = query(response.headers["Location"])["code"]
    assert flow.token(code, client_id=flow.rp.client_id).status_code == 200


def test_a_public_client_without_pkce_is_refused(client, make, member):
    flow = Flow(client, "malakoff", make.client(auth_method="none"), member)

    response = push(flow, code_challenge=None, code_challenge_method=None)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_the_parameters_of_the_authorize_url_are_ignored(flow):
    # RFC 9126 4: only client_id and request_uri count; the pushed request is the request.
    request_uri = pushed_uri(flow, state="st-pushed")

    response = flow.login(authorize_pushed(
        flow, request_uri, redirect_uri="https://attacker.example/cb", state="st-url",
        response_mode="fragment", prompt="none"))

    location = response.headers["Location"]
    assert location.startswith("https://rp.example.org/callback?")
    assert query(location)["state"] == "st-pushed"


@pytest.mark.parametrize("credentials", [
    {},
    {"auth": ("client", "wrong-secret")},
    {"data_extra": {"client_secret": "wrong-secret"}},
])
def test_a_push_without_valid_client_authentication_is_refused(flow, credentials):
    data = flow.params()
    data.update(credentials.pop("data_extra", {}))
    if "auth" in credentials:
        credentials["auth"] = (flow.rp.client_id, credentials["auth"][1])

    response = flow.http.post(PAR, data=data, **credentials)

    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "request_uri" not in response.json


@pytest.mark.parametrize("audience", ["http://localhost/malakoff", "http://localhost/malakoff/token",
                                      "http://localhost/malakoff/par"])
def test_a_client_assertion_may_name_the_issuer_or_either_endpoint(client, make, member, audience):
    # RFC 9126 2: the issuer, the token endpoint and the push endpoint are all the audience.
    key = RSAKey.generate_key(2048, auto_kid=True)
    rp = make.client(auth_method="private_key_jwt", jwks=KeySet([key]).as_dict(private=False))
    flow = Flow(client, "malakoff", rp, member)
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS256", "kid": key.kid}, {
        "iss": rp.client_id, "sub": rp.client_id, "aud": audience, "jti": f"jti-{time.time_ns()}",
        "iat": now, "exp": now + 60}, key)

    response = client.post(PAR, data={
        **flow.params(), "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})

    assert response.status_code == 201, response.json


def test_a_push_for_another_client_is_refused(flow, make):
    other = make.client()

    response = push(flow, client_id=other.client_id)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize(("overrides", "code"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"redirect_uri": "https://attacker.example/cb"}, "invalid_request"),
    ({"redirect_uri": None}, "invalid_request"),
    ({"scope": "profile email"}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"nonce": "n" * 501}, "invalid_request"),
    ({"claims": "not json"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"response_mode": "web_message"}, "invalid_request"),
    ({"id_token_hint": "not-a-jwt"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "urn:ietf:params:oauth:request_uri:abc"}, "invalid_request"),
    ({"registration": "{}"}, "registration_not_supported"),
    # The input gate's lengths: authorization_codes.redirect_uri and .scope.
    ({"redirect_uri": "https://rp.example.org/" + "a" * 2000}, "invalid_request"),
    ({"scope": "openid " + "x" * 500}, "invalid_request"),
])
def test_bad_parameters_are_answered_as_json_errors(flow, overrides, code):
    response = push(flow, **overrides)

    assert response.status_code == 400, response.data[:300]
    assert response.mimetype == "application/json"
    assert response.json["error"] == code
    assert "Location" not in response.headers


def test_a_request_uri_is_used_once(app, flow):
    request_uri = pushed_uri(flow)
    assert authorize_pushed(flow, request_uri).status_code == 200

    another_browser = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    refused_page(authorize_pushed(another_browser, request_uri))
    assert authorize_pushed(another_browser, pushed_uri(flow)).status_code == 200


def test_the_page_of_a_pushed_request_reloads_in_the_browser_that_brought_it(flow, make):
    """RFC 9126 4 allows a reload: the same parked request, in its own language too, for as long
    as it is parked; not for another client, and not once it is answered."""
    request_uri = pushed_uri(flow, state="st-pushed")
    _page, interaction = flow.sign_in_page(authorize_pushed(flow, request_uri))
    reloaded, again = flow.sign_in_page(authorize_pushed(flow, request_uri))
    assert again == interaction
    english = authorize_pushed(flow, request_uri, lang="en")
    assert b'<html lang="en">' in english.data and flow.sign_in_page(english)[1] == interaction
    refused_page(authorize_pushed(flow, request_uri, client_id=make.client("malakoff").client_id))
    signed_in = flow.login(reloaded)
    assert query(signed_in.headers["Location"])["state"] == "st-pushed"
    sign_in_over(authorize_pushed(flow, request_uri, lang="fr"))


def test_the_page_of_a_pushed_request_answered_tells_a_signed_in_browser_so(app, flow):
    """The Back button from the portal, once signed in on the sign-in page the request got (a
    trusted browser, or a passkey): that page, said over; another browser is refused."""
    request_uri = pushed_uri(flow)
    shown = authorize_pushed(flow, request_uri)
    assert "code" in query(flow.login(shown).headers["Location"])
    back = authorize_pushed(flow, request_uri)
    sign_in_over(back)
    assert b'href="https://rp.example.org/"' in back.data
    refused_page(authorize_pushed(Flow(app.test_client(), "malakoff", flow.rp, flow.account),
                                  request_uri))


def test_an_expired_request_uri_is_refused(app, flow, monkeypatch):
    services = app.extensions["idp"]
    monkeypatch.setattr(services, "settings", dataclasses.replace(services.settings,
                                                                  pushed_request_ttl=1))
    response = push(flow)
    assert response.json["expires_in"] == 1
    time.sleep(1.5)

    refused_page(authorize_pushed(flow, response.json["request_uri"]))


@pytest.mark.parametrize("request_uri", [
    "urn:ietf:params:oauth:request_uri:never-pushed",
    "urn:ietf:params:oauth:request_uri:",
])
def test_an_unknown_request_uri_is_refused(flow, request_uri):
    refused_page(authorize_pushed(flow, request_uri))


def test_a_request_uri_is_bound_to_its_client(flow, make):
    request_uri = pushed_uri(flow)
    other = make.client()

    refused_page(authorize_pushed(flow, request_uri, client_id=other.client_id))
    refused_page(flow.http.get("/malakoff/authorize", query_string={"request_uri": request_uri}))
    # The other client's attempts leave the request to its owner.
    assert authorize_pushed(flow, request_uri).status_code == 200
    # Once the owner's browser has it, a reload there still names the owner.
    refused_page(authorize_pushed(flow, request_uri, client_id=other.client_id))
    refused_page(flow.http.get("/malakoff/authorize", query_string={"request_uri": request_uri}))
    assert authorize_pushed(flow, request_uri).status_code == 200


def test_a_request_uri_is_bound_to_its_tenant(flow):
    request_uri = pushed_uri(flow)

    response = flow.http.get("/miel/authorize", query_string={
        "client_id": flow.rp.client_id, "request_uri": request_uri})

    refused_page(response)


def _require_par(db, rp) -> None:
    db.execute(Client.__table__.update().where(Client.client_id == rp.client_id)
               .values(require_pushed_authorization_requests=True))
    db.commit()


def test_a_client_required_to_push_is_refused_at_authorize(db, flow, rp):
    _require_par(db, rp)

    response = flow.authorize()

    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://rp.example.org/callback?")
    params = query(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["state"].startswith("st-")


def test_a_client_required_to_push_signs_in_with_a_pushed_request(db, flow, rp):
    _require_par(db, rp)

    # Through the sign-in pages and back to /authorize/resume: the request stays a pushed one.
    response = flow.login(authorize_pushed(flow, pushed_uri(flow)))

    assert "code" in query(response.headers["Location"])


def test_a_pushed_request_is_not_replayed_from_the_browser_when_time_is_out(app, db, flow, rp,
                                                                            monkeypatch):
    # The sign-in page's "start again" link: the pushed parameters never go into a URL.
    _require_par(db, rp)
    request_uri = pushed_uri(flow, state="st-secret")
    login = authorize_pushed(flow, request_uri)

    restart = re.search(r'data-deadline-when="expired" hidden><a [^>]*href="([^"]+)"',
                        login.data.decode())

    assert restart is not None
    link = html.unescape(restart[1])
    assert link.startswith("/malakoff/authorize/restart?token=")
    # Once the parked request is gone (its time ran out), the link starts it again, still as a
    # pushed request: a sign-in page, not a refusal.
    started, lifetime = time.time(), app.extensions["idp"].settings.interaction_ttl
    monkeypatch.setattr(time, "time", lambda: started + lifetime + 1)
    refused_page(authorize_pushed(flow, request_uri))
    again = flow.http.get(link)
    assert again.status_code == 200 and b'name="password"' in again.data
    signed_in = flow.login(again)
    assert query(signed_in.headers["Location"])["state"] == "st-secret"
    # Tampered with: nothing resumed (this browser is signed in); for another tenant: expired.
    sign_in_over(flow.http.get(link[:-3] + "abc"))
    assert flow.http.get(link.replace("/malakoff/", "/miel/")).status_code == 400


def test_discovery_advertises_the_endpoint(client):
    document = client.get("/malakoff/.well-known/openid-configuration").json

    assert document["pushed_authorization_request_endpoint"] == "http://localhost/malakoff/par"
    assert document["require_pushed_authorization_requests"] is False


def test_the_requirement_is_set_and_changed_with_the_cli(runner, db):
    added = runner.invoke(args=["clients", "add", "--tenant", "malakoff", "--name", "Portail",
                                "--redirect-uri", "https://rp.example.org/callback", "--require-par",
                                "--json"])
    assert added.exit_code == 0, added.output
    client_id = json.loads(added.output)["client_id"]

    def stored() -> bool:
        db.rollback()
        return db.scalar(select(Client.require_pushed_authorization_requests)
                         .where(Client.client_id == client_id))

    assert stored() is True
    assert "required (PAR only)" in runner.invoke(args=["clients", "show", client_id]).output
    updated = runner.invoke(args=["clients", "update", client_id, "--no-require-par"])
    assert updated.exit_code == 0, updated.output
    assert "pushed requests optional" in updated.output
    assert stored() is False

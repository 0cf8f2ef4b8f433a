"""RP-initiated logout 1.0: confirmation, server-side sign-out, post-logout redirect."""

from __future__ import annotations

from tests.flows import Flow, csrf_token, query


def _logout(flow, **params):
    response = flow.http.get("/malakoff/logout", query_string=params)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/malakoff/logout/confirm")
    return flow.http.get("/malakoff/logout/confirm")


def _confirm(flow, page, button="confirm"):
    return flow.http.post("/malakoff/logout/confirm", data={
        button: "x", "csrf_token": csrf_token(page.data)})


def test_logout_with_id_token_hint_redirects_with_state(flow):
    id_token = flow.tokens()["id_token"]
    page = _logout(flow, id_token_hint=id_token, post_logout_redirect_uri="https://rp.example.org/",
                   state="bye", client_id=flow.rp.client_id)
    assert page.status_code == 200
    assert "Voulez-vous vous déconnecter\u00a0?".encode() in page.data
    done = _confirm(flow, page)
    assert done.status_code == 303
    assert done.headers["Location"] == "https://rp.example.org/?state=bye"
    # Signed out server-side: prompt=none now needs a sign-in.
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_logout_never_redirects_to_an_unregistered_uri(flow):
    id_token = flow.tokens()["id_token"]
    page = _logout(flow, id_token_hint=id_token, post_logout_redirect_uri="https://evil.example.org/")
    done = _confirm(flow, page)
    assert done.headers["Location"].endswith("/malakoff/logout/done")


def test_logout_without_id_token_hint_does_not_redirect_to_the_client(flow):
    flow.code()
    page = _logout(flow, post_logout_redirect_uri="https://rp.example.org/",
                   client_id=flow.rp.client_id)
    done = _confirm(flow, page)
    assert done.headers["Location"].endswith("/malakoff/logout/done")


def test_cancel_keeps_the_member_signed_in(flow):
    flow.code()
    page = _logout(flow)
    _confirm(flow, page, button="cancel")
    assert "code" in query(flow.authorize(prompt="none").headers["Location"])


def test_invalid_id_token_hint_shows_an_error_page(flow):
    response = flow.http.get("/malakoff/logout", query_string={"id_token_hint": "garbage"})
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_logout_of_one_tenant_keeps_the_other(client, make, flow):
    miel = Flow(client, "miel", make.client("miel"), make.account("miel"))
    miel.code()
    flow.code()
    _confirm(flow, _logout(flow))
    assert "code" in query(miel.authorize(prompt="none").headers["Location"])
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_confirmation_page_requires_a_pending_logout(client):
    assert client.get("/malakoff/logout/confirm").status_code == 404


def test_logout_with_id_token_hint_and_no_client_id_returns_to_the_client(flow):
    # RP-Initiated Logout 1.0 2-3: the client is the one the hint was issued to; its `aud` is an
    # array here (OIDC Core 2), with `azp` naming the client.
    id_token = flow.tokens()["id_token"]
    claims = flow.id_token_claims(id_token)
    assert claims["aud"] == [flow.rp.client_id] and claims["azp"] == flow.rp.client_id

    page = _logout(flow, id_token_hint=id_token, post_logout_redirect_uri="https://rp.example.org/",
                   state="bye")
    assert page.status_code == 200
    assert b"Portail de test" in page.data
    done = _confirm(flow, page)

    assert done.headers["Location"] == "https://rp.example.org/?state=bye"
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_logout_hint_of_one_client_never_redirects_to_anothers_uri(client, make, flow):
    other = make.client(post_logout_redirect_uris=("https://other.example.org/",))
    id_token = flow.tokens()["id_token"]

    done = _confirm(flow, _logout(flow, id_token_hint=id_token,
                                  post_logout_redirect_uri="https://other.example.org/"))

    assert done.headers["Location"].endswith("/malakoff/logout/done")
    assert other.client_id != flow.rp.client_id


def test_id_token_hint_of_another_tenant_is_refused(client, make):
    # The keys are shared between tenants: the signature alone does not tell the issuer.
    malakoff = Flow(client, "malakoff", make.client(), make.account())
    id_token = malakoff.tokens()["id_token"]
    make.client("miel", post_logout_redirect_uris=("https://rp.example.org/",))

    response = client.get("/miel/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://rp.example.org/",
        "state": "bye"})

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"invalid_request" in response.data
    # Nothing pending: no confirmation page, and the Malakoff session is untouched.
    assert client.get("/miel/logout/confirm").status_code == 404
    assert "code" in query(malakoff.authorize(prompt="none").headers["Location"])


def test_the_confirmation_page_speaks_the_language_the_portal_asks(flow):
    # RP-Initiated Logout 1.0 2: ui_locales, as at the authorization endpoint.
    id_token = flow.tokens()["id_token"]

    page = _logout(flow, id_token_hint=id_token, ui_locales="en-GB fr")

    assert b'<html lang="en">' in page.data
    assert _confirm(flow, page).status_code == 303


def test_a_language_not_spoken_leaves_the_page_in_french(flow):
    page = _logout(flow, id_token_hint=flow.tokens()["id_token"], ui_locales="de")

    assert b'<html lang="fr">' in page.data


def test_logout_by_post_is_answered_as_by_get(flow):
    # RP-Initiated Logout 1.0 2: the OP supports GET and POST (form-encoded).
    id_token = flow.tokens()["id_token"]
    asked = flow.http.post("/malakoff/logout", data={
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://rp.example.org/", "state": "bye"})
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/malakoff/logout/confirm")

    done = _confirm(flow, flow.http.get("/malakoff/logout/confirm"))

    assert done.headers["Location"] == "https://rp.example.org/?state=bye"
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"

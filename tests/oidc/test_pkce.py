"""PKCE required of every client by default, with a per-client exemption for legacy confidential
clients (RFC 9700 2.1.1); S256 only (RFC 7636 4.3)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from idp.oidc.models import Client, Token
from tests.flows import Flow, query

NO_PKCE = {"code_challenge": None, "code_challenge_method": None}


def clients(runner, *args: str):
    return runner.invoke(args=["clients", *args])


def stored_client(db, client_id: str) -> Client:
    db.rollback()
    return db.scalar(select(Client).where(Client.client_id == client_id))


def _redirected_error(response) -> dict:
    assert response.status_code in (302, 303), response.data[:500]
    assert response.headers["Location"].startswith("https://rp.example.org/callback?")
    return query(response.headers["Location"])


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post", "none"])
def test_every_client_must_send_a_code_challenge_by_default(client, make, member, auth_method):
    flow = Flow(client, "malakoff", make.client(auth_method=auth_method), member)

    params = _redirected_error(flow.authorize(**NO_PKCE))

    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_discovery_still_lists_s256_only(client):
    document = client.get("/malakoff/.well-known/openid-configuration").json
    assert document["code_challenge_methods_supported"] == ["S256"]


def test_clients_are_registered_requiring_pkce(runner, db):
    result = clients(runner, "add", "--tenant", "malakoff", "--name", "Portail",
                     "--redirect-uri", "https://rp.example.org/callback", "--json")
    assert result.exit_code == 0, result.output
    client_id = json.loads(result.output)["client_id"]

    assert stored_client(db, client_id).require_pkce is True
    assert "PKCE:" in clients(runner, "show", client_id).output
    assert "required" in clients(runner, "show", client_id).output


def test_a_legacy_confidential_client_may_be_exempted_at_registration(runner, db, client, member):
    result = clients(runner, "add", "--tenant", "malakoff", "--name", "Ancien portail",
                     "--redirect-uri", "https://rp.example.org/callback", "--no-pkce", "--first-party",
                     "--json")
    assert result.exit_code == 0, result.output
    registered = json.loads(result.output)
    rp = stored_client(db, registered["client_id"])
    assert rp.require_pkce is False
    assert "not required (legacy exemption)" in clients(runner, "show", rp.client_id).output
    rp.secret = registered["client_secret"]
    flow = Flow(client, "malakoff", rp, member)

    tokens = flow.token(flow.code(**NO_PKCE), verifier=None)

    assert tokens.status_code == 200, tokens.json
    # Still allowed to use PKCE, and then held to it.
    code = query(flow.authorize().headers["Location"])["code"]
    assert flow.token(code, verifier=None).json["error"] == "invalid_request"


def test_an_exempted_client_can_be_held_to_pkce_again(runner, db, flow):
    assert clients(runner, "update", flow.rp.client_id, "--no-pkce").exit_code == 0
    code = flow.code(**NO_PKCE)
    assert clients(runner, "update", flow.rp.client_id, "--pkce").exit_code == 0

    # Authorization: refused without a challenge; token: a code issued without one is not redeemed.
    assert _redirected_error(flow.authorize(**NO_PKCE))["error"] == "invalid_request"
    response = flow.token(code, verifier=None)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Token)) == 0


def test_a_public_client_cannot_be_exempted(runner, db, make):
    public = make.client(auth_method="none")

    result = clients(runner, "update", public.client_id, "--no-pkce")
    assert result.exit_code != 0
    assert "public client" in result.output
    assert stored_client(db, public.client_id).require_pkce is True

    added = clients(runner, "add", "--tenant", "malakoff", "--name", "Application",
                    "--redirect-uri", "https://rp.example.org/callback", "--auth-method", "none",
                    "--no-pkce")
    assert added.exit_code != 0
    assert "public client" in added.output


def test_update_needs_something_to_change_and_a_known_client(runner, flow):
    assert clients(runner, "update", flow.rp.client_id).exit_code != 0
    unknown = clients(runner, "update", "malakoff-unknown", "--no-pkce")
    assert unknown.exit_code != 0
    assert "no client with id" in unknown.output

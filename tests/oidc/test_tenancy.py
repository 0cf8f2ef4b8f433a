"""Tenants are separate issuers: accounts, clients and tokens do not cross over."""

from __future__ import annotations

from tests.flows import Flow, query


def test_an_account_of_one_tenant_cannot_sign_in_to_the_other(client, make):
    miel_member = make.account("miel")
    flow = Flow(client, "malakoff", make.client("malakoff"), miel_member)
    response = flow.login(flow.authorize(), identifier=miel_member.member_number)
    assert response.status_code == 401


def test_miel_members_sign_in_with_their_member_number_only(client, make):
    member = make.account("miel", email="adherent@example.org")
    flow = Flow(client, "miel", make.client("miel"), member)
    assert flow.login(flow.authorize(), identifier="adherent@example.org").status_code == 401
    assert "code" in query(flow.login(flow.authorize(), identifier=member.member_number).headers["Location"])


def test_tokens_of_one_tenant_are_unknown_to_the_other(client, make):
    flow = Flow(client, "malakoff", make.client("malakoff"), make.account("malakoff"))
    access_token = flow.tokens()["access_token"]
    headers = {"Authorization": f"Bearer {access_token}"}
    assert client.get("/malakoff/userinfo", headers=headers).status_code == 200
    assert client.get("/miel/userinfo", headers=headers).status_code == 401


def test_sign_in_pages_carry_each_brand(client):
    malakoff = client.get("/malakoff/login").data.decode()
    miel = client.get("/miel/login").data.decode()
    assert "Malakoff Humanis" in malakoff and "Espace Client" in malakoff
    assert "Miel mutuelle" in miel and "Espace Affilié" in miel
    assert 'autocomplete="username webauthn"' in miel and 'inputmode="numeric"' in miel
    assert 'inputmode="email"' in malakoff

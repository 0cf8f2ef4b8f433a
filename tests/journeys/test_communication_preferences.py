"""Miel's communication preferences: optional at first sign-in, changed from the account page,
released as a claim (SPEC §3.2)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from idp.accounts.models import Account
from idp.events import PREFERENCES_CHANGED, AuditEvent
from tests.flows import Flow, csrf_token, query

PAGE = "/miel/account/preferences"


def _userinfo(flow: Flow) -> dict:
    """The claims a portal reads, the member being signed in."""
    code = query(flow.authorize(scope="openid member").headers["Location"])["code"]
    tokens = flow.token(code).json
    return flow.http.get("/miel/userinfo",
                         headers={"Authorization": f"Bearer {tokens['access_token']}"}).json


def _first_sign_in(make, client, db) -> tuple[Flow, object]:
    """A Miel member who has never signed in: the terms page, reached after the code."""
    account = make.account("miel", preferences=None)
    db.get(Account, account.id).terms_version = None
    db.commit()
    flow = Flow(client, "miel", make.client("miel"), account)
    return flow, client.get(flow.login(flow.authorize(scope="openid member")).headers["Location"])


def test_the_first_sign_in_needs_only_the_terms_and_says_what_applies_otherwise(make, client, db):
    flow, page = _first_sign_in(make, client, db)
    html = page.get_data(as_text=True)
    assert "Vos préférences de communication (facultatif)" in html
    assert "Vous pourrez les modifier à tout moment depuis votre compte." in html
    # The defaults are shown as they are: post for the documents, no marketing.
    assert html.count("checked") == 2
    assert 'id="statements-1" name="statements" type="radio" value="post"' in html
    assert 'name="marketing" type="checkbox" value="y">' in html

    accepted = client.post("/miel/login/terms", data={"accept_terms": "y",
                                                      "csrf_token": csrf_token(page.data)})
    assert accepted.status_code == 303 and "code" in query(accepted.headers["Location"])
    assert _userinfo(flow)["communication_preferences"] == {
        "statements": "post", "letters": "post", "marketing": False}


def test_the_account_page_shows_the_preferences_and_changes_them(make, client, db):
    flow, page = _first_sign_in(make, client, db)
    client.post("/miel/login/terms", data={"accept_terms": "y", "statements": "email",
                                           "letters": "post", "marketing": "y",
                                           "csrf_token": csrf_token(page.data)})
    account_page = client.get("/miel/account").get_data(as_text=True)
    assert "<h2 id=\"preferences-title\">Mes préférences de communication</h2>" in account_page
    assert f'href="{PAGE}"' in account_page
    assert "<dd>Par e-mail</dd>" in account_page and "<dd>Oui, je les accepte</dd>" in account_page

    form = client.get(PAGE)
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert "<h1>Mes préférences de communication</h1>" in html
    # Prefilled with the member's choices.
    assert 'checked id="statements-0" name="statements" type="radio" value="email"' in html
    assert 'checked id="letters-1" name="letters" type="radio" value="post"' in html
    assert 'checked id="marketing" name="marketing"' in html

    # Withdrawing the consent: the box unticked, nothing else.
    saved = client.post(PAGE, data={"statements": "email", "letters": "email",
                                    "csrf_token": csrf_token(form.data)})
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith("/miel/account?changed=preferences")
    shown = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'role="status"><p>Vos préférences de communication sont enregistrées.</p>' in shown
    assert "<dd>Non</dd>" in shown
    assert _userinfo(flow)["communication_preferences"] == {
        "statements": "email", "letters": "email", "marketing": False}

    changes = db.scalars(select(AuditEvent).where(AuditEvent.tag == PREFERENCES_CHANGED,
                                                  AuditEvent.account_id == flow.account.id)
                         .order_by(AuditEvent.id)).all()
    assert [event.data["preferences"]["marketing"] for event in changes] == [True, False]
    assert changes[-1].data["preferences"] == {"statements": "email", "letters": "email",
                                               "marketing": False}


def test_giving_the_consent_from_the_account_page_is_released_at_once(make, client):
    account = make.account("miel")
    flow = Flow(client, "miel", make.client("miel"), account)
    flow.code()
    form = client.get(PAGE)
    client.post(PAGE, data={"statements": "post", "letters": "email", "marketing": "y",
                            "csrf_token": csrf_token(form.data)})
    assert _userinfo(flow)["communication_preferences"] == {
        "statements": "post", "letters": "email", "marketing": True}


def test_a_choice_that_is_none_of_the_options_is_told_on_its_field_and_changes_nothing(
        make, client, db):
    account = make.account("miel")
    Flow(client, "miel", make.client("miel"), account).code()
    form = client.get(PAGE)
    refused = client.post(PAGE, data={"statements": "pigeon", "letters": "post", "marketing": "y",
                                      "csrf_token": csrf_token(form.data)})
    assert refused.status_code == 400
    assert b'aria-describedby="statements-error"' in refused.data
    db.expire_all()
    assert db.get(Account, account.id).preferences == {"statements": "email", "letters": "email",
                                                       "marketing": False}
    assert db.scalar(select(AuditEvent).where(AuditEvent.tag == PREFERENCES_CHANGED)) is None


def test_the_page_needs_a_signed_in_member_and_a_form_with_its_token(make, client, db):
    assert client.get(PAGE).headers["Location"].endswith("/miel/login")
    account = make.account("miel")
    Flow(client, "miel", make.client("miel"), account).code()
    assert client.post(PAGE, data={"statements": "post", "letters": "post"}).status_code == 400
    db.expire_all()
    assert db.get(Account, account.id).preferences["statements"] == "email"


def test_the_tenant_s_setting_says_whether_the_account_page_has_them(app, flow):
    flow.code()
    assert "préférences".encode() not in flow.http.get("/malakoff/account").data
    assert flow.http.get("/malakoff/account/preferences").status_code == 404

    tenants = app.extensions["idp"].tenants
    tenants["malakoff"] = dataclasses.replace(tenants["malakoff"], communication_preferences=True)
    assert b'href="/malakoff/account/preferences"' in flow.http.get("/malakoff/account").data
    page = flow.http.get("/malakoff/account/preferences").get_data(as_text=True)
    # The consent names the tenant's brand; never set, the preferences are the defaults.
    assert "des offres et des informations de Malakoff Humanis</label>" in page
    assert 'checked id="statements-1" name="statements" type="radio" value="post"' in page

"""Passkeys over HTTP with a software authenticator: add, sign in with it alone, and every refusal."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.events import AuditEvent
from idp.passkeys.models import Passkey
from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, query
from tests.webauthn import SoftwareAuthenticator


def _options(http, url: str, page: bytes):
    return http.post(url, headers={"X-CSRFToken": csrf_token(page), "Accept": "application/json"})


def _reauthenticate(flow, password=PASSWORD):
    page = flow.http.get(f"/{flow.tenant}/account/passkeys/new")
    return flow.http.post(f"/{flow.tenant}/account/passkeys/new", data={
        "current_password": password, "csrf_token": csrf_token(page.data)})


def _register(flow, authenticator, name="Mon téléphone", *, credential=None, reauthenticate=True,
              **overrides):
    """From a signed-in session: the password again, then options, the authenticator, the form."""
    if reauthenticate:
        assert _reauthenticate(flow).status_code == 303
    page = flow.http.get(f"/{flow.tenant}/account/passkeys/create")
    assert page.status_code == 200
    if credential is None:
        options = _options(flow.http, f"/{flow.tenant}/account/passkeys/options", page.data)
        assert options.status_code == 200
        credential = json.dumps(authenticator.register(options.json, **overrides))
    return flow.http.post(f"/{flow.tenant}/account/passkeys/create", data={
        "name": name, "credential": credential, "csrf_token": csrf_token(page.data)})


def _passkey_sign_in(flow, authenticator, *, credential=None, **overrides):
    """From /authorize to the sign-in page, then "Me connecter en 1 clic"."""
    page, interaction = flow.sign_in_page(flow.authorize(**overrides.pop("authorize", {})))
    if credential is None:
        options = _options(flow.http, f"/{flow.tenant}/login/passkey/options", page.data)
        assert options.status_code == 200
        credential = json.dumps(authenticator.sign(options.json, **overrides))
    return flow.http.post(f"/{flow.tenant}/login/passkey", data={
        "interaction": interaction, "credential": credential,
        "csrf_token": csrf_token(page.data)})


def _fresh_browser(app, flow) -> Flow:
    return Flow(app.test_client(), flow.tenant, flow.rp, flow.account)


def _id_token(flow, response) -> dict:
    assert response.status_code == 303, response.data[:500]
    code = query(response.headers["Location"])["code"]
    tokens = flow.token(code).json
    return flow.id_token_claims(tokens["id_token"])


def _count(db, model, *where) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model).where(*where))


def _events(db, tag: str) -> list[AuditEvent]:
    db.expire_all()
    # In the order they were recorded: a table emptied between tests reuses its free space.
    return list(db.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


@pytest.fixture
def key():
    return SoftwareAuthenticator()


@pytest.fixture
def registered(flow, key):
    """A member signed in with password and code who has just added a passkey."""
    flow.code()
    assert _register(flow, key).status_code == 303
    return key


def test_a_member_adds_a_passkey_then_it_alone_signs_in(app, flow, db, key):
    flow.code()
    added = _register(flow, key)
    assert added.status_code == 303 and added.headers["Location"].endswith("/account?changed=passkey-added")
    page = flow.http.get("/malakoff/account").data.decode()
    assert "Mon téléphone" in page and "Ajoutée le" in page and "Jamais utilisée" in page
    notice = db.scalar(select(Message).where(Message.template == "passkey_added"))
    assert notice.recipient == flow.account.email and "Mon téléphone" in notice.body_text
    assert "http://localhost/malakoff/account" in notice.body_text
    assert len(_events(db, "account:passkey:add")) == 1

    browser = _fresh_browser(app, flow)
    claims = _id_token(browser, _passkey_sign_in(browser, key))
    assert claims["acr"] == "urn:mh:acr:phr"
    assert claims["amr"] == ["swk", "user"]
    assert claims["sub"] == flow.account.id
    page = browser.http.get("/malakoff/account").data.decode()
    assert "Dernière utilisation" in page and "Jamais utilisée" not in page
    assert _events(db, "account:login:success")[-1].data == {"method": "passkey"}


def test_a_roaming_security_key_signs_in_as_hardware(app, flow):
    usb_key = SoftwareAuthenticator(attachment="cross-platform", transports=("usb", "nfc"))
    flow.code()
    assert _register(flow, usb_key).status_code == 303
    browser = _fresh_browser(app, flow)
    assert _id_token(browser, _passkey_sign_in(browser, usb_key))["amr"] == ["hwk", "user"]


def test_a_synced_security_key_is_software(app, flow):
    synced = SoftwareAuthenticator(attachment="cross-platform", transports=("usb",), synced=True)
    flow.code()
    assert _register(flow, synced).status_code == 303
    browser = _fresh_browser(app, flow)
    assert _id_token(browser, _passkey_sign_in(browser, synced))["amr"] == ["swk", "user"]


def test_a_passkey_session_satisfies_a_request_for_the_code_level(app, flow, registered):
    browser = _fresh_browser(app, flow)
    claims = _id_token(browser, _passkey_sign_in(browser, registered,
                                                 authorize={"acr_values": "urn:mh:acr:otp"}))
    assert claims["acr"] == "urn:mh:acr:phr"
    # Already signed in with a passkey: no step-up for the code level.
    answer = query(browser.authorize(prompt="none", acr_values="urn:mh:acr:otp").headers["Location"])
    assert "code" in answer


def test_asking_for_the_passkey_level_offers_the_sign_in_page(app, flow, registered):
    # Signed in with password and code; only a passkey reaches phr, so not the code page.
    page = flow.authorize(acr_values="urn:mh:acr:phr")
    assert page.status_code == 200 and b'data-passkey="get"' in page.data
    # Asking for the code level from a passkey-less password session still steps up by code.
    step_up = flow.authorize(acr_values="urn:mh:acr:otp")
    assert "code" in query(step_up.headers["Location"])


def test_discovery_lists_the_passkey_level(client):
    document = client.get("/malakoff/.well-known/openid-configuration").json
    assert "urn:mh:acr:phr" in document["acr_values_supported"]


def test_adding_a_passkey_needs_the_password_again(flow, key, db):
    flow.code()
    assert flow.http.get("/malakoff/account/passkeys/create").headers["Location"].endswith(
        "/malakoff/account/passkeys/new")
    page = flow.http.get("/malakoff/account/passkeys/new")
    assert _options(flow.http, "/malakoff/account/passkeys/options", page.data).status_code == 403
    wrong = _reauthenticate(flow, password="not-my-password")
    assert wrong.status_code == 400 and b"Mot de passe actuel incorrect." in wrong.data
    assert _count(db, Passkey) == 0


def test_the_passkey_pages_need_a_signed_in_member(client):
    for url in ("/malakoff/account/passkeys/new", "/malakoff/account/passkeys/abc"):
        response = client.get(url)
        assert response.status_code == 303 and response.headers["Location"].endswith("/malakoff/login")
    # The password page first, which sends to the sign-in page.
    response = client.get("/malakoff/account/passkeys/create")
    assert response.headers["Location"].endswith("/malakoff/account/passkeys/new")


def test_the_options_endpoints_need_the_csrf_token(flow):
    flow.code()
    assert flow.http.post("/malakoff/login/passkey/options").status_code == 400
    assert flow.http.post("/malakoff/account/passkeys/options").status_code == 400


@pytest.mark.parametrize("url", [
    "/malakoff/login/passkey/options", "/malakoff/account/passkeys/options",
    # The pages' other scripts' endpoints: "J’ai besoin de plus de temps".
    "/malakoff/login/extend", "/malakoff/session/extend",
])
@pytest.mark.parametrize(("body", "content_type", "with_token"), [
    ("{not json", "application/json", True),
    ('["a", "list"]', "application/json", True),
    ("{}", "application/json", False),
    ("", None, False),
], ids=["malformed", "not-an-object", "no-token", "no-token-no-body"])
def test_the_scripts_endpoints_refuse_a_bad_request_in_json(flow, url, body, content_type, with_token):
    """Whatever the request's Accept: a script reads the answer as JSON."""
    flow.code()
    page = flow.http.get("/malakoff/account/passkeys/new")
    headers = {"X-CSRFToken": csrf_token(page.data)} if with_token else {}
    response = flow.http.post(url, data=body, content_type=content_type, headers=headers)
    assert response.status_code == 400
    assert response.is_json and set(response.json) == {"error", "error_description"}
    assert response.json["error"] == "invalid_request" and response.json["error_description"]


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"origin": "https://evil.example"}, "origin"),
    ({"origin": "http://localhost:8080"}, "origin"),
    ({"rp_id": "evil.example"}, "RP ID"),
    ({"user_verified": False}, "verif"),
    ({"challenge": "bm90LXRoZS1jaGFsbGVuZ2U"}, "challenge"),
])
def test_a_registration_that_does_not_verify_adds_nothing(flow, key, db, overrides, reason):
    flow.code()
    response = _register(flow, key, **overrides)
    assert response.status_code == 400
    assert "La clé d’accès n’a pas pu être enregistrée.".encode() in response.data
    assert _count(db, Passkey) == 0
    assert _count(db, Message, Message.template == "passkey_added") == 0
    assert reason in _events(db, "account:passkey:failure")[0].data["reason"]


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"origin": "https://evil.example"}, "origin"),
    ({"rp_id": "evil.example"}, "RP ID"),
    ({"user_verified": False}, "verif"),
])
def test_a_sign_in_that_does_not_verify_is_refused(app, flow, db, registered, overrides, reason):
    browser = _fresh_browser(app, flow)
    response = _passkey_sign_in(browser, registered, **overrides)
    assert response.status_code == 400
    assert "La clé d’accès n’a pas pu être vérifiée.".encode() in response.data
    assert query(browser.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert reason in _events(db, "account:passkey:failure")[-1].data["reason"]


def test_a_challenge_works_once(app, flow, registered):
    browser = _fresh_browser(app, flow)
    page, interaction = browser.sign_in_page(browser.authorize())
    options = _options(browser.http, "/malakoff/login/passkey/options", page.data).json
    credential = json.dumps(registered.sign(options))
    data = {"interaction": interaction, "credential": credential,
            "csrf_token": csrf_token(page.data)}
    assert browser.http.post("/malakoff/login/passkey", data=data).status_code == 303
    # The same response again, in another browser that asked for its own challenge.
    other = _fresh_browser(app, flow)
    replayed = _passkey_sign_in(other, registered, credential=credential)
    assert replayed.status_code == 400
    assert query(other.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    # And in the same browser, whose challenge is spent.
    again = browser.http.post("/malakoff/login/passkey", data={**data, "interaction": ""})
    assert again.status_code == 400 and "La demande a expiré".encode() in again.data


def test_a_registration_challenge_works_once(flow, key, db):
    flow.code()
    assert _reauthenticate(flow).status_code == 303
    page = flow.http.get("/malakoff/account/passkeys/create")
    options = _options(flow.http, "/malakoff/account/passkeys/options", page.data).json
    data = {"name": "Clé", "credential": json.dumps(key.register(options)),
            "csrf_token": csrf_token(page.data)}
    assert flow.http.post("/malakoff/account/passkeys/create", data=data).status_code == 303
    assert _reauthenticate(flow).status_code == 303
    assert flow.http.post("/malakoff/account/passkeys/create", data=data).status_code == 400
    assert _count(db, Passkey) == 1


def test_a_passkey_of_one_tenant_does_not_sign_in_to_the_other(app, make, flow, db, registered):
    miel_member = make.account("miel", member_number=flow.account.member_number[:-1] + "9")
    miel = Flow(app.test_client(), "miel", make.client("miel"), miel_member)
    response = _passkey_sign_in(miel, registered)
    assert response.status_code == 401
    assert "n’est pas enregistrée".encode() in response.data
    assert query(miel.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert _events(db, "account:passkey:failure")[-1].data == {"reason": "unknown"}


def test_a_removed_passkey_no_longer_signs_in_and_the_password_still_does(app, flow, db, registered):
    passkey = db.scalar(select(Passkey))
    page = flow.http.get(f"/malakoff/account/passkeys/{passkey.id}")
    assert page.status_code == 200
    removed = flow.http.post(f"/malakoff/account/passkeys/{passkey.id}/remove",
                             data={"confirm": "1", "csrf_token": csrf_token(page.data)})
    assert removed.status_code == 303 and removed.headers["Location"].endswith("changed=passkey-removed")
    assert "Aucune clé d’accès." in flow.http.get("/malakoff/account").data.decode()
    assert _count(db, Passkey) == 0
    assert len(_events(db, "account:passkey:remove")) == 1
    notice = db.scalar(select(Message).where(Message.template == "passkey_removed"))
    assert notice.recipient == flow.account.email and "Mon téléphone" in notice.body_text

    browser = _fresh_browser(app, flow)
    assert _passkey_sign_in(browser, registered).status_code == 401
    assert "code" in query(browser.sign_in().headers["Location"])


def test_a_counter_that_goes_backwards_blocks_the_passkey(app, flow, db, registered):
    browser = _fresh_browser(app, flow)
    assert _passkey_sign_in(browser, registered, count=5).status_code == 303
    clone = _fresh_browser(app, flow)
    refused = _passkey_sign_in(clone, registered, count=3)
    assert refused.status_code == 401 and "bloquée par sécurité".encode() in refused.data
    event = _events(db, "account:passkey:clone-detected")[0]
    assert event.account_id == flow.account.id
    assert event.data["stored_count"] == 5 and event.data["received_count"] == 3
    db.expire_all()
    assert db.scalar(select(Passkey)).blocked_at is not None
    # Blocked for good, even with a counter that moves on again.
    assert _passkey_sign_in(_fresh_browser(app, flow), registered, count=9).status_code == 401
    assert "Bloquée par sécurité" in flow.http.get("/malakoff/account").data.decode()


def test_a_counter_that_stays_at_zero_is_accepted(app, flow, registered):
    # Authenticators without a counter always send 0 (WebAuthn §6.1.1).
    for _ in range(2):
        browser = _fresh_browser(app, flow)
        assert _passkey_sign_in(browser, registered, count=0).status_code == 303


GARBAGE = [
    "",
    "not json",
    "[]",
    "null",
    '{"id": 5}',
    '{"id": "abc"}',
    '{"id": "abc", "rawId": "abc", "type": "public-key", "response": {}}',
    '{"id": "abc", "rawId": "abc", "type": "public-key", "response": {"clientDataJSON": "%%%",'
    ' "attestationObject": "!!", "authenticatorData": "!!", "signature": "!!"}}',
    "[" * 5000 + "]" * 5000,
    "x" * 20_000,
]


@pytest.mark.parametrize("credential", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_at_registration_is_a_clear_400_and_adds_nothing(flow, key, db, credential):
    flow.code()
    response = _register(flow, key, credential=credential)
    assert response.status_code == 400
    assert b'role="alert"' in response.data
    assert _count(db, Passkey) == 0


@pytest.mark.parametrize("credential", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_at_sign_in_is_a_clear_400_and_signs_no_one_in(app, flow, registered, credential):
    browser = _fresh_browser(app, flow)
    response = _passkey_sign_in(browser, registered, credential=credential)
    assert response.status_code in (400, 401)
    assert b'role="alert"' in response.data
    assert query(browser.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_garbage_with_a_known_id_changes_nothing(app, flow, db, registered):
    forged = json.dumps({"id": registered.id, "rawId": registered.id, "type": "public-key",
                         "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA",
                                      "signature": "AAAA"}})
    browser = _fresh_browser(app, flow)
    assert _passkey_sign_in(browser, registered, credential=forged).status_code == 400
    db.expire_all()
    passkey = db.scalar(select(Passkey))
    assert passkey.blocked_at is None and passkey.last_used_at is None


def test_a_passkey_is_renamed_and_bad_names_are_refused(flow, db, registered):
    passkey = db.scalar(select(Passkey))
    url = f"/malakoff/account/passkeys/{passkey.id}"
    page = flow.http.get(url)
    for bad in ("", "x" * 65):
        refused = flow.http.post(url, data={"name": bad, "csrf_token": csrf_token(page.data)})
        assert refused.status_code == 400 and b'aria-invalid="true"' in refused.data
    done = flow.http.post(url, data={"name": "Clé USB bleue", "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    assert "Clé USB bleue" in flow.http.get("/malakoff/account").data.decode()


def test_a_name_is_required_when_adding(flow, key, db):
    flow.code()
    response = _register(flow, key, name="")
    assert response.status_code == 400 and b"Donnez un nom" in response.data
    assert _count(db, Passkey) == 0


def test_another_members_passkey_is_out_of_reach(app, make, flow, db, registered):
    passkey = db.scalar(select(Passkey))
    other = Flow(app.test_client(), "malakoff", flow.rp, make.account("malakoff"))
    other.code()
    assert other.http.get(f"/malakoff/account/passkeys/{passkey.id}").status_code == 404
    page = other.http.get("/malakoff/account/passkeys/new")
    removed = other.http.post(f"/malakoff/account/passkeys/{passkey.id}/remove",
                              data={"confirm": "1", "csrf_token": csrf_token(page.data)})
    assert removed.status_code == 404
    assert _count(db, Passkey) == 1


def test_deleting_the_account_deletes_its_passkeys(flow, db, registered):
    page = flow.http.get("/malakoff/account/delete")
    done = flow.http.post("/malakoff/account/delete", data={
        "current_password": PASSWORD, "confirm": "y", "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    assert _count(db, Account, Account.id == flow.account.id) == 0
    assert _count(db, Passkey) == 0


def test_a_disabled_account_cannot_sign_in_with_its_passkey(app, flow, db, registered):
    account = db.get(Account, flow.account.id)
    account.status = "disabled"
    db.commit()
    assert _passkey_sign_in(_fresh_browser(app, flow), registered).status_code == 401


def test_the_sign_in_page_offers_passkeys_in_the_identifier_autofill(client):
    page = client.get("/malakoff/login").data.decode()
    assert 'autocomplete="username webauthn"' in page
    assert "Me connecter en 1\u00a0clic" in page and "/static/passkeys.js" in page
    # Hidden until the script finds WebAuthn: without JavaScript, the password form alone.
    assert "data-passkey-available hidden" in page

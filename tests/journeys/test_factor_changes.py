"""What a change of factor ends (SPEC §6): the account's other browser sessions, its refresh
tokens and its trusted browsers; the browser that made the change stays signed in. On both
tenants: Malakoff's members sign in with their email, Miel's with their member number."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, last_code, query

NEW_ADDRESS = "jeanne.ailleurs@example.net"
NEW_PASSWORD = "Bruyere-Monts-Arree-29!"
OFFLINE = "openid email offline_access"
TENANTS = ["malakoff", "miel"]


@pytest.fixture(params=TENANTS)
def flow(request, client, make):
    """A member's browser and a portal of each tenant, ready to sign in; the member has an
    email (Miel's factory gives none: here its codes go there too) and a mobile."""
    tenant = request.param
    account = make.account(tenant, email=f"jeanne.{secrets.token_hex(4)}@example.org")
    return Flow(client, tenant, make.client(tenant), account)


def _other_browser(app, flow) -> Flow:
    return Flow(app.test_client(), flow.tenant, flow.rp, flow.account)


def _identifier_after(app, flow, change: str) -> str:
    """What the member signs in with after the change: the new email where the email is the
    identifier (Malakoff), the member number otherwise (Miel)."""
    by_email = app.extensions["idp"].tenants[flow.tenant].logs_in_with_email
    return NEW_ADDRESS if change == "email" and by_email else flow.identifier


def _signed_in_with_tokens(flow) -> dict:
    """Sign in, trusting this browser, and get tokens with a refresh token."""
    done = flow.login(flow.authorize(scope=OFFLINE), remember=True)
    tokens = flow.token(query(done.headers["Location"])["code"]).json
    assert "refresh_token" in tokens, tokens
    return tokens


def _after_the_password(flow, identifier: str, password: str = PASSWORD) -> str:
    """Where the sign-in goes once the password is right: the code, unless trusted."""
    page, interaction = flow.sign_in_page(flow.authorize(prompt="login"))
    answer = flow.http.post(f"/{flow.tenant}/login", data={
        "interaction": interaction,
        "identifier": identifier, "password": password, "csrf_token": csrf_token(page.data)})
    assert answer.status_code == 303, answer.data[:300]
    return answer.headers["Location"]


def _post(flow, path: str, **data):
    page = flow.http.get(path)
    assert page.status_code == 200, path
    return flow.http.post(path, data={"csrf_token": csrf_token(page.data), **data})


def _change_email(app, flow):
    sent = _post(flow, f"/{flow.tenant}/account/email", current_password=PASSWORD,
                 email=NEW_ADDRESS, email_confirm=NEW_ADDRESS)
    assert sent.status_code == 303, sent.data[:300]
    return _post(flow, f"/{flow.tenant}/account/email/confirm",
                 code=last_code(app, template="email_code"))


def _change_mobile(app, flow):
    sent = _post(flow, f"/{flow.tenant}/account/mobile", current_password=PASSWORD,
                 mobile="07 81 99 88 77")
    assert sent.status_code == 303, sent.data[:300]
    return _post(flow, f"/{flow.tenant}/account/mobile/confirm",
                 code=last_code(app, "sms", template="mobile_change"))


def _change_password(app, flow):
    return _post(flow, f"/{flow.tenant}/account/password", current_password=PASSWORD,
                 password=NEW_PASSWORD, password_confirm=NEW_PASSWORD)


CHANGES = {"email": _change_email, "mobile": _change_mobile, "password": _change_password}


def _ended(flow, tokens: dict, identifier: str, password: str = PASSWORD) -> None:
    """This browser is signed out, its refresh token refused, its trust forgotten."""
    account = flow.http.get(f"/{flow.tenant}/account")
    assert account.status_code == 303
    assert account.headers["Location"].endswith(f"/{flow.tenant}/login")
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    refreshed = flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"
    assert _after_the_password(flow, identifier, password).endswith(f"/{flow.tenant}/login/code")


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_of_factor_ends_the_other_browsers_and_keeps_this_one(app, flow, change):
    other = _other_browser(app, flow)
    identifier = flow.identifier
    mine, theirs = _signed_in_with_tokens(flow), _signed_in_with_tokens(other)
    # Trusted before the change: the password alone signs in there.
    assert "code" in query(_after_the_password(other, identifier))
    auth_time = flow.id_token_claims(mine["id_token"])["auth_time"]

    done = CHANGES[change](app, flow)

    assert done.status_code == 303 and f"changed={change}" in done.headers["Location"]
    page = flow.http.get(done.headers["Location"])
    assert "vos autres appareils et les applications connectées".encode() in page.data
    assert "navigateurs de confiance oubliés".encode() in page.data
    # This browser is still signed in, with the sign-in it had.
    still = flow.authorize(prompt="none", scope=OFFLINE)
    tokens = flow.token(query(still.headers["Location"])["code"]).json
    assert flow.id_token_claims(tokens["id_token"])["auth_time"] == auth_time
    assert flow.refresh(tokens["refresh_token"]).status_code == 200
    # The other one is signed out at its next request, and holds nothing any more.
    _ended(other, theirs, _identifier_after(app, flow, change),
           NEW_PASSWORD if change == "password" else PASSWORD)
    # This browser's own earlier tokens and trust went too.
    assert flow.refresh(mine["refresh_token"]).status_code == 400


def test_support_setting_a_contact_ends_every_session(app, flow, runner):
    other = _other_browser(app, flow)
    identifier = flow.identifier
    mine, theirs = _signed_in_with_tokens(flow), _signed_in_with_tokens(other)

    result = runner.invoke(args=["accounts", "set-contact", "--tenant", flow.tenant, identifier,
                                 "--phone", "07 81 99 88 66"])

    assert result.exit_code == 0, result.output
    for browser, tokens in ((flow, mine), (other, theirs)):
        _ended(browser, tokens, identifier)


def test_a_sign_in_after_the_change_stands(app, flow):
    other = _other_browser(app, flow)
    flow.code()
    other.code()
    _change_mobile(app, flow)

    again = other.login(other.authorize(prompt="login"))

    assert "code" in query(again.headers["Location"])
    assert "code" in query(other.authorize(prompt="none").headers["Location"])
    assert "code" in query(flow.authorize(prompt="none").headers["Location"])


def test_a_sign_in_ends_at_the_absolute_timeout_even_in_a_session_renewed_since(
        app, client, flow, make, monkeypatch):
    """Why the record of a change need not outlive the absolute timeout: no sign-in does."""
    start = time.time()
    flow.code()
    tenant = next(other for other in TENANTS if other != flow.tenant)
    elsewhere = Flow(client, tenant, make.client(tenant), make.account(tenant))
    monkeypatch.setattr(time, "time", lambda: start + 11 * 3600)
    elsewhere.code()  # a new session id and a new absolute timeout for the browser's session

    monkeypatch.setattr(time, "time", lambda: start + 12 * 3600 + 60)

    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert "code" in query(elsewhere.authorize(prompt="none").headers["Location"])

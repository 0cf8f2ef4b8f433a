"""The sign-in's floors (bench/signin_floor.py, served by bench/floor_app.py, and the same on the
fixed stack, bench/stack_floor.py) answer the bench driver's flows as the provider does, or their
figures would measure something else: a trusted browser signs in with its password, another is
asked a code by email first, every form is bound to the browser and taken once, and a code is
redeemed once, for an ID token of that sign-in."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from bench import floor_app, pages, seed, signin_floor, stack_floor
from idp.channels.models import Message
from idp.oidc import server as oidc_server
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.factories import PASSWORD

pytestmark = pytest.mark.skipif(
    not (DATABASE_URL and REDIS_URL),
    reason="the floor runs on PostgreSQL and Redis only (IDP_TEST_DATABASE_URL, IDP_TEST_REDIS_URL)")

BASE = "http://localhost"
ISSUER = f"{BASE}/malakoff"


@pytest.fixture
def portal(make):
    return make.client(redirect_uris=(seed.REDIRECT_URI,))


@pytest.fixture(params=[floor_app.FloorApp, stack_floor.StackFloorApp], ids=["floor", "stack"])
def browser(request, portal, database_url, tmp_path, monkeypatch):
    """A browser on a floor; the provider's names the floor sets are put back after."""
    for name in ("single_statements", "current_tenant", "check_in_time", "commit_deadline", "services"):
        monkeypatch.setattr(oidc_server, name, getattr(oidc_server, name))
    wsgi = request.param(database_url, str(tmp_path / "floor.log"), ISSUER, (portal.client_id, portal.secret),
                         REDIS_URL)
    yield Client(wsgi)
    wsgi.close()


def _sign_in_page(browser: Client, portal, nonce: str = "n-0S6_WzA2Mj"):
    params = pages.authorization_params(portal.client_id, prompt="login", nonce=nonce)
    page = browser.get("/malakoff/authorize", query_string=params, base_url=BASE)
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Cache-Control"] == "no-store"
    return page.text, params["state"]


def _password(browser: Client, page: str, login: str, password: str = PASSWORD):
    return browser.post("/malakoff/login", base_url=BASE, data={
        "interaction": pages.interaction(page), "identifier": login, "password": password,
        "csrf_token": pages.csrf(page)})


def _redeem(browser: Client, portal, callback: str):
    return browser.post("/malakoff/token", base_url=BASE, headers={
        "Authorization": pages.basic(portal.client_id, portal.secret)}, data={
        "grant_type": "authorization_code", "code": pages.query_value(callback, "code"),
        "redirect_uri": seed.REDIRECT_URI, "code_verifier": seed.CODE_VERIFIER})


def _claims(id_token: str) -> dict:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_trusted_browser_signs_in_with_its_password_and_the_code_is_redeemed_once(browser, portal, make):
    member = make.account()
    browser.set_cookie(signin_floor.DEVICE_COOKIE, "trusted", domain="localhost")
    page, state = _sign_in_page(browser, portal)

    answer = _password(browser, page, member.email)

    assert answer.status_code == 303
    callback = answer.headers["Location"]
    assert callback.startswith(seed.REDIRECT_URI + "?")
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    tokens = _redeem(browser, portal, callback)
    assert tokens.status_code == 200, tokens.text
    claims = _claims(tokens.json["id_token"])
    assert (claims["sub"], claims["nonce"], claims["acr"], claims["amr"], claims["iss"]) == (
        member.id, "n-0S6_WzA2Mj", "urn:mh:acr:pwd", ["pwd"], ISSUER)
    assert tokens.json["access_token"] and tokens.json["token_type"] == "Bearer"
    again = _redeem(browser, portal, callback)
    assert (again.status_code, again.json["error"]) == (400, "invalid_grant")


def test_a_sign_in_form_is_taken_once_from_its_own_browser_with_the_right_password(browser, portal, make):
    member = make.account()
    browser.set_cookie(signin_floor.DEVICE_COOKIE, "trusted", domain="localhost")
    page, _state = _sign_in_page(browser, portal)
    other = Client(browser.application)  # another browser, without this one's cookie

    assert _password(other, page, member.email).status_code == 400
    wrong = _password(browser, page, member.email, "Not-The-Password-1!")
    assert wrong.status_code == 200 and "Location" not in wrong.headers
    assert "incorrect" in wrong.text
    # The wrong password took the interaction: the same page cannot sign in any more.
    assert _password(browser, page, member.email).status_code == 400
    page, _state = _sign_in_page(browser, portal)
    assert _password(browser, page, member.email).status_code == 303


def test_a_request_the_client_may_not_make_gets_no_page(browser, portal):
    params = pages.authorization_params(portal.client_id, redirect_uri="https://elsewhere.example/cb")
    assert browser.get("/malakoff/authorize", query_string=params, base_url=BASE).status_code == 400
    params = pages.authorization_params(portal.client_id, code_challenge_method="plain")
    assert browser.get("/malakoff/authorize", query_string=params, base_url=BASE).status_code == 400


def test_another_browser_is_asked_a_code_sent_by_email(browser, portal, make, db):
    member = make.account()
    page, state = _sign_in_page(browser, portal)

    choose = _password(browser, page, member.email)

    assert choose.status_code == 303
    page = browser.get(choose.headers["Location"], base_url=BASE)
    assert page.status_code == 200 and 'name="channel"' in page.text
    sent = browser.post(choose.headers["Location"], base_url=BASE,
                        data={"channel": "email", "csrf_token": pages.csrf(page.text)})
    assert sent.status_code == 303
    message = db.scalars(select(Message).where(Message.recipient == member.email)).one()
    assert (message.template, message.status, message.channel) == ("otp_code", "pending", "email")
    code = pages.emailed_code(message.body_text)
    verify = sent.headers["Location"]
    page = browser.get(verify, base_url=BASE)
    wrong = browser.post(verify, base_url=BASE, data={
        "code": f"{(int(code) + 1) % 10**6:06d}", "csrf_token": pages.csrf(page.text)})
    assert wrong.status_code == 200 and "Location" not in wrong.headers

    signed_in = browser.post(verify, base_url=BASE, data={"code": code, "csrf_token": pages.csrf(page.text)})

    assert signed_in.status_code == 303
    callback = signed_in.headers["Location"]
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    claims = _claims(_redeem(browser, portal, callback).json["id_token"])
    assert (claims["sub"], claims["acr"], claims["amr"]) == (
        member.id, "urn:mh:acr:otp", ["pwd", "otp", "mail"])
    # The code signed in once.
    again = browser.post(verify, base_url=BASE, data={"code": code, "csrf_token": pages.csrf(page.text)})
    assert again.status_code == 200 and "Location" not in again.headers
    assert browser.get(verify, base_url=BASE).status_code == 400

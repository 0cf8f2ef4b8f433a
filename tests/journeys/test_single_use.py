"""Single use under concurrency (SPEC §3.3): twenty browsers using one activation link, one
reset link, one registration, one pushed authorization request, one authorization code or one
refresh token at the same moment, twenty tabs sending one sign-in's code (or guessing it), against
a provider under its production server with several workers on PostgreSQL and Redis
(authorization codes, refresh tokens and the sign-in's code also against the embedded default: a
SQLite file under the demo's threaded server), and twenty operators deciding one review request
at once. Exactly one use succeeds
(and sends its email); the others get a clear page (or a clear refusal), never a 500."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

import click
import pytest
import requests
from flask.cli import ScriptInfo
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from idp import create_app, events, schema
from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.cli import main
from idp.db import Database
from idp.events import AuditEvent
from idp.oidc.models import AuthorizationCode, Token
from idp.registry.models import Member
from tests.conftest import DATABASE_URL, REDIS_URL, provider_settings
from tests.factories import PASSWORD, Factories
from tests.flows import Flow, csrf_token, interaction_of, pkce_pair, query, sms_code_step
from tests.servers import node_environment, werkzeug_serving

SHARED_STORES = pytest.mark.skipif(
    not (DATABASE_URL and REDIS_URL),
    reason="concurrent workers need a shared PostgreSQL and Redis: set IDP_TEST_DATABASE_URL "
           "and IDP_TEST_REDIS_URL")

pytestmark = [pytest.mark.server]

PARALLEL = 20


@pytest.fixture
def node(settings, provider_nodes):
    """The provider under its production server, four workers: requests really overlap. It trusts one proxy,
    so that each browser can come from its own address (the per-address limits stay out of
    the way of what is measured here)."""
    return provider_nodes(node_environment(settings, cookie_secure=False, trusted_proxies=1),
                          workers=4)


@dataclass
class Serving:
    """A provider serving on a real port, a Malakoff portal and member of it, and a session on its
    database."""

    url: str
    flow: Flow
    db: Session


@pytest.fixture(params=[pytest.param("production", marks=SHARED_STORES), "embedded"])
def provider(request, settings, tmp_path) -> Iterator[Serving]:
    """The production server on PostgreSQL and Redis (``node``), or the embedded default as
    `idp demo` runs it: a SQLite file and the in-process store, under Werkzeug's threaded
    server."""
    if request.param == "production":
        app, db, make = (request.getfixturevalue(name) for name in ("app", "db", "make"))
        flow = Flow(app.test_client(), "malakoff", make.client("malakoff"), make.account("malakoff"))
        yield Serving(request.getfixturevalue("node").url, flow, db)
        return
    url = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    with Database(url).migrating(create=True) as migrating:  # as `idp db upgrade` makes it
        schema.upgrade(migrating)
    # As ``node``: cookies over plain HTTP, each browser at the address it forwards.
    app = create_app({**provider_settings(url, settings["keys_dir"], redis_url=""),
                      "cookie_secure": False, "trusted_proxies": 1})
    engine = app.extensions["idp"].database.engine
    event.listen(engine, "before_cursor_execute", _slow_insert)
    db = app.extensions["idp"].database.session()
    make = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", make.client("malakoff"), make.account("malakoff"))
    try:
        with werkzeug_serving(app) as url:
            yield Serving(url, flow, db)
    finally:
        db.close()


def _slow_insert(_connection, _cursor, statement: str, *_args) -> None:
    """New rows written a little late, as on a busy disk: a use that claimed the code or token,
    then issued its tokens apart from that claim, would be seen half done by the others."""
    if statement.lstrip().startswith("INSERT"):
        time.sleep(0.2)


class Browser:
    """One member's browser (its own cookie jar) at its own address."""

    def __init__(self, base: str, number: int):
        self.base = base
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = f"198.51.100.{number + 1}"

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=30)

    def post(self, path: str, data: dict) -> requests.Response:
        return self.http.post(self.base + path, data=data, allow_redirects=False, timeout=60)


def at_once(browsers: list[Browser], prepare: Callable[[Browser], dict],
            act: Callable[[Browser, dict], requests.Response]) -> list[requests.Response]:
    """``prepare`` in each browser (its form, its token), then every ``act`` released together."""
    forms = [prepare(browser) for browser in browsers]
    start = threading.Barrier(len(browsers))

    def run(index: int) -> requests.Response:
        start.wait(timeout=30)
        return act(browsers[index], forms[index])

    with ThreadPoolExecutor(len(browsers)) as pool:
        return list(pool.map(run, range(len(browsers))))


def _mails(db, template: str) -> list[Message]:
    db.expire_all()
    return list(db.scalars(select(Message).where(Message.template == template).order_by(Message.id)))


def _events(db, tag: str) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == tag))


def _no_server_error(answers: list[requests.Response]) -> None:
    assert [a.status_code for a in answers if a.status_code >= 500] == []


@pytest.fixture
def registry(db):
    db.add(Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
                  first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
                  kind="health", status="active", mobile="+33612345678"))
    db.commit()


REGISTRATION = {
    "member_number": "23456789", "last_name": "dupont morel", "first_name": "jean pierre",
    "birth_date": "23/11/1949", "email": "jp.dupont@example.org",
    "email_confirm": "jp.dupont@example.org", "mobile": "06 12 34 56 78", "accept_terms": "y",
}


def _register_form(browser: Browser) -> dict:
    page = browser.get("/malakoff/register")
    assert page.status_code == 200
    return {**REGISTRATION, "csrf_token": csrf_token(page.content)}


def _sms_code(db, mobile: str) -> str:
    db.expire_all()
    body = db.scalar(select(Message.body_text).where(
        Message.template == "registration_code", Message.recipient == mobile)
        .order_by(Message.id.desc()).limit(1))
    return re.search(r"\d{6}", body)[0]


def _code_form(browser: Browser, tenant: str, code: str) -> dict:
    page = browser.get(f"/{tenant}/register/code")
    assert page.status_code == 200, page.status_code
    return {"code": code, "csrf_token": csrf_token(page.content)}


def _registered(db, browser: Browser) -> None:
    """Malakoff's registration in ``browser``, both steps, one after the other."""
    assert browser.post("/malakoff/register", _register_form(browser)).status_code == 303
    code = _code_form(browser, "malakoff", _sms_code(db, "+33612345678"))
    assert browser.post("/malakoff/register/code", code).headers["Location"] == "/malakoff/register/sent"


@SHARED_STORES
def test_twenty_members_registering_one_address_at_once_give_it_to_one_account(db, node):
    """The address is unique per tenant: the registrations that lose it end cleanly."""
    db.add_all([Member(tenant="malakoff", member_number=f"{30000000 + n}", last_name="MARTIN",
                       first_name="Paul", birth_date=date(1950, 1, 1 + n), role="principal",
                       kind="health", status="active", mobile=f"+336123456{n:02d}")
                for n in range(PARALLEL)])
    db.commit()
    browsers = [Browser(node.url, n) for n in range(PARALLEL)]

    def form(browser: Browser) -> dict:
        n = browsers.index(browser)
        step_one = {**_register_form(browser), "member_number": f"{30000000 + n}",
                    "last_name": "Martin", "first_name": "Paul", "birth_date": f"{1 + n:02d}/01/1950",
                    "mobile": f"06 12 34 56 {n:02d}"}
        assert browser.post("/malakoff/register", step_one).status_code == 303
        return _code_form(browser, "malakoff", _sms_code(db, f"+336123456{n:02d}"))

    answers = at_once(browsers, form, lambda browser, data: browser.post("/malakoff/register/code", data))

    _no_server_error(answers)
    assert {a.headers.get("Location") for a in answers} == {"/malakoff/register/sent"}
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Account).where(
        Account.email == "jp.dupont@example.org")) == 1
    assert len(_mails(db, "activation")) == 1
    assert len(_mails(db, "email_in_use")) <= 1


def _activation_path(db, tenant: str = "malakoff") -> str:
    body = _mails(db, "activation")[-1].body_text
    return re.search(rf"http://localhost(/{tenant}/activate/\S+)", body)[1]


def _new_passwords_at_once(node, path: str, stem: str):
    """Twenty browsers open the password form of one link, then all post it at once, each
    with its own new password: the browsers, their passwords and the answers."""
    passwords = [f"{stem}-{n:02d}!" for n in range(PARALLEL)]
    browsers = [Browser(node.url, n) for n in range(PARALLEL)]

    def form(browser: Browser) -> dict:
        page = browser.get(path)
        assert page.status_code == 200
        return {"csrf_token": csrf_token(page.content)}

    def define(browser: Browser, data: dict) -> requests.Response:
        password = passwords[browsers.index(browser)]
        return browser.post(path, {**data, "password": password, "password_confirm": password})

    return browsers, passwords, at_once(browsers, form, define)


@SHARED_STORES
def test_twenty_uses_of_one_activation_link_activate_once(app, db, registry, node):
    _registered(db, Browser(node.url, 99))
    path = _activation_path(db)
    browsers, passwords, answers = _new_passwords_at_once(node, path, "Nouveau-Depart")

    _no_server_error(answers)
    welcomed = [n for n, a in enumerate(answers) if a.headers.get("Location") == "/malakoff/welcome"]
    assert len(welcomed) == 1
    others = [n for n in range(PARALLEL) if n not in welcomed]
    assert {answers[n].headers.get("Location") for n in others} == {"/malakoff/activate/expired"}
    for n in others:
        used = browsers[n].get("/malakoff/activate/expired")
        assert used.status_code == 200 and "Ce lien a déjà servi" in used.text
        assert 'href="/malakoff/login"' in used.text  # the way onward: sign in

    db.expire_all()
    account = db.scalar(select(Account))
    assert account.status == "active"
    hasher = app.extensions["idp"].hasher
    assert [n for n, p in enumerate(passwords) if hasher.verify(account.password_hash, p).ok] == welcomed
    assert _events(db, events.ACCOUNT_ACTIVATED) == 1


@SHARED_STORES
def test_twenty_uses_of_one_reset_link_change_the_password_once(app, db, make, node):
    account = make.account("malakoff")
    asked = Browser(node.url, 99)
    page = asked.get("/malakoff/forgot-password")
    asked.post("/malakoff/forgot-password", {"identifier": account.email,
                                             "csrf_token": csrf_token(page.content)})
    path = re.search(r"http://localhost(/malakoff/reset-password/\S+)",
                     _mails(db, "password_reset")[-1].body_text)[1]
    _browsers, passwords, answers = _new_passwords_at_once(node, path, "Lavande-Valensole")

    _no_server_error(answers)
    done = [n for n, a in enumerate(answers)
            if a.headers.get("Location") == "/malakoff/reset-password/done"]
    assert len(done) == 1
    for n, answer in enumerate(answers):
        if n not in done:
            assert answer.status_code == 400 and "déjà servi" in answer.text, answer.text[:500]
            assert 'href="/malakoff/forgot-password"' in answer.text
    db.expire_all()
    hasher = app.extensions["idp"].hasher
    changed = db.get(Account, account.id)
    assert [n for n, p in enumerate(passwords) if hasher.verify(changed.password_hash, p).ok] == done
    assert len(_mails(db, "password_changed")) == 1


def _pushed_path(node, rp) -> str:
    """/authorize with the reference of a request the client just pushed."""
    pushed = requests.post(f"{node.url}/malakoff/par", auth=(rp.client_id, rp.secret), data={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uris[0],
        "scope": "openid", "state": "st-1", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256"}, timeout=30)
    assert pushed.status_code == 201, pushed.text
    return f"/malakoff/authorize?client_id={rp.client_id}&request_uri={pushed.json()['request_uri']}"


@SHARED_STORES
def test_twenty_uses_of_one_pushed_request_let_one_through(make, node):
    # RFC 9126 4: a request_uri is one-time, whichever worker each browser reaches.
    path = _pushed_path(node, make.client("malakoff"))
    browsers = [Browser(node.url, n) for n in range(PARALLEL)]

    answers = at_once(browsers, lambda _browser: {}, lambda browser, _form: browser.get(path))

    _no_server_error(answers)
    through = [a for a in answers if a.status_code == 200]
    assert len(through) == 1
    assert 'name="password"' in through[0].text
    refused = [a for a in answers if a.status_code == 400 and "invalid_request_uri" in a.text]
    assert len(refused) == PARALLEL - 1


@SHARED_STORES
def test_twenty_reloads_of_one_pushed_request_in_one_browser_park_it_once(make, node):
    # The browser that brought the reference is shown the request it parked on a reload: the
    # same one, whichever of the twenty at once parked it.
    path = _pushed_path(node, make.client("malakoff"))
    browser = Browser(node.url, 0)
    assert browser.get("/malakoff/login").status_code == 200  # a session, which all twenty share
    tabs = [browser] * PARALLEL

    answers = at_once(tabs, lambda _browser: {}, lambda tab, _form: tab.get(path))

    _no_server_error(answers)
    shown = {interaction_of(a.content) for a in answers if a.status_code == 200}
    assert len(shown) == 1
    assert all(a.status_code == 200 or "invalid_request_uri" in a.text for a in answers)
    assert browser.get(path).status_code == 200


def _granted_once(provider: Serving, data: dict, uses: int = PARALLEL) -> requests.Response:
    """The same token request from ``uses`` browsers at once: the one answer that granted it
    (the others are invalid_grant, none a server error)."""
    rp = provider.flow.rp

    def post(browser: Browser, _form: dict) -> requests.Response:
        return browser.http.post(f"{browser.base}/malakoff/token", data=data, timeout=60,
                                 auth=(rp.client_id, rp.secret))

    answers = at_once([Browser(provider.url, n) for n in range(uses)], lambda _browser: {}, post)
    _no_server_error(answers)
    granted = [a for a in answers if a.status_code == 200]
    assert len(granted) == 1
    assert [a.json()["error"] for a in answers if a.status_code != 200] == ["invalid_grant"] * (uses - 1)
    return granted[0]


# Two: the member's redemption and an attacker's. With more, a use that comes late revokes the
# token again, which would hide one whose revocation came before the token was there to revoke.
@pytest.mark.parametrize("uses", [2, PARALLEL])
def test_redemptions_of_one_code_at_once_issue_one_token_and_revoke_it(provider, uses):
    # RFC 6749 4.1.2: a code is used once, whichever worker each request reached; the others
    # are uses of a used code, which revoke the tokens it produced.
    flow, db = provider.flow, provider.db
    code = flow.code(scope="openid offline_access")
    _granted_once(provider, {"grant_type": "authorization_code", "code": code,
                             "redirect_uri": flow.rp.redirect_uris[0], "code_verifier": flow.verifier},
                  uses)
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Token)) == 1
    assert db.scalar(select(Token.revoked_at)) is not None
    assert _events(db, events.CODE_REUSED) >= 1


def test_twenty_uses_of_one_refresh_token_rotate_once_and_end_the_family(provider):
    # RFC 9700 4.14.2: one use rotates the refresh token; the same token presented again is a
    # replay, which revokes the family, the winner's new tokens included.
    flow, db = provider.flow, provider.db
    refresh_token = flow.tokens(scope="openid offline_access")["refresh_token"]
    rotated = _granted_once(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Token)) == 2
    assert db.scalar(select(func.count()).select_from(Token).where(Token.revoked_at.is_(None))) == 0
    assert _events(db, events.REFRESH_REUSED) >= 1
    assert flow.refresh(rotated.json()["refresh_token"]).json["error"] == "invalid_grant"


# -- the sign-in's code: twenty tabs at once ----------------------------------------------------


def _at_the_code_page(provider: Serving) -> tuple[Browser, str]:
    """A browser at the sign-in's code page (the password given, the code sent by email), and
    that code."""
    flow, browser = provider.flow, Browser(provider.url, 0)
    page = browser.get(f"/malakoff/authorize?{urlencode(flow.params())}")
    assert page.status_code == 200, page.status_code
    given = browser.post("/malakoff/login", {
        "interaction": interaction_of(page.content), "identifier": flow.identifier,
        "password": PASSWORD, "csrf_token": csrf_token(page.content)})
    assert given.headers["Location"].endswith("/malakoff/login/code"), given.status_code
    choose = browser.get("/malakoff/login/code")
    sent = browser.post("/malakoff/login/code",
                        {"channel": "email", "csrf_token": csrf_token(choose.content)})
    assert sent.status_code == 303, sent.status_code
    provider.db.expire_all()
    body = provider.db.scalar(select(Message.body_text).where(Message.template == "otp_code")
                              .order_by(Message.id.desc()).limit(1))
    return browser, re.search(r"\b\d{6}\b", body)[0]


def _code_tabs(provider: Serving, browser: Browser, codes: list[str]) -> list[requests.Response]:
    """``codes`` posted at once from as many tabs of ``browser`` (its session, its address)."""
    tabs = [Browser(provider.url, 0) for _ in codes]

    def form(tab: Browser) -> dict:
        tab.http.cookies.update(browser.http.cookies)
        page = tab.get("/malakoff/login/code/verify")
        assert page.status_code == 200, page.status_code
        return {"code": codes[tabs.index(tab)], "csrf_token": csrf_token(page.content)}

    return at_once(tabs, form, lambda tab, data: tab.post("/malakoff/login/code/verify", data))


def _signed_in(provider: Serving, answers: list[requests.Response]) -> list[requests.Response]:
    """The answers that took the member to the portal with an authorization code."""
    portal = provider.flow.rp.redirect_uris[0]
    return [a for a in answers if a.status_code in (302, 303)
            and a.headers["Location"].startswith(portal) and "code" in query(a.headers["Location"])]


def test_twenty_tabs_sending_the_right_code_at_once_sign_in_once(provider):
    """The code is single use whichever worker each tab reached: one tab goes on to the portal,
    with one authorization code; the others are told, never given a second one."""
    browser, code = _at_the_code_page(provider)

    answers = _code_tabs(provider, browser, [code] * PARALLEL)

    _no_server_error(answers)
    assert len(_signed_in(provider, answers)) == 1
    provider.db.expire_all()
    assert provider.db.scalar(select(func.count()).select_from(AuthorizationCode)) == 1


def test_twenty_wrong_codes_at_once_spend_the_tries_once(provider):
    """An attacker with the password guessing the code from twenty tabs at once gets no more
    tries than one tab after another would: the first four are said wrong, then the code is
    locked (or the account's limit of checks reached); the right code then signs nobody in."""
    browser, code = _at_the_code_page(provider)
    wrong = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, PARALLEL + 1)]

    answers = _code_tabs(provider, browser, wrong)

    _no_server_error(answers)
    said_wrong = sorted(re.search(r"Il vous reste (\d) essai", a.text)[1] for a in answers
                        if "Code incorrect" in a.text)
    assert said_wrong == ["1", "2", "3", "4"]
    assert all("Trop de codes incorrects" in a.text or a.status_code == 429
               for a in answers if "Code incorrect" not in a.text)
    assert _signed_in(provider, _code_tabs(provider, browser, [code])) == []


@pytest.fixture
def miel_registry(db):
    db.add(Member(tenant="miel", member_number="76543210", nir="262082A00403607",
                  last_name="N'DIAYE", first_name="Françoise", birth_date=date(1962, 8, 30),
                  role="principal", kind="health", status="active", mobile="+33781223344"))
    db.commit()


def _malakoff_step_one(db, browser: Browser) -> str:
    assert browser.post("/malakoff/register", _register_form(browser)).status_code == 303
    return _sms_code(db, "+33612345678")


def _miel_steps_one_and_two(db, browser: Browser) -> str:
    page = browser.get("/miel/register")
    assert browser.post("/miel/register", {
        "nir": "262082A00403607", "birth_date": "30/08/1962", "birth_department": "2A",
        "last_name": "Ndiaye", "first_name": "francoise",
        "csrf_token": csrf_token(page.content)}).status_code == 303
    page = browser.get("/miel/register/contact")
    assert browser.post("/miel/register/contact", {
        "email": "f.ndiaye@example.org", "email_confirm": "f.ndiaye@example.org",
        "mobile": "07 81 22 33 44", "csrf_token": csrf_token(page.content)}).status_code == 303
    return _sms_code(db, "+33781223344")


@SHARED_STORES
@pytest.mark.parametrize(("tenant", "steps_before", "welcome_emails"), [
    ("malakoff", _malakoff_step_one, ["activation"]),
    ("miel", _miel_steps_one_and_two, ["activation", "identifier"]),
])
def test_twenty_submissions_of_the_last_step_register_once(
        db, registry, miel_registry, node, tenant, steps_before, welcome_emails):
    """The step that decides a registration (the SMS code), sent from twenty tabs at once."""
    browser = Browser(node.url, 99)
    code = steps_before(db, browser)

    def form(tab: Browser) -> dict:
        # Twenty tabs of the one browser: the same session, the same code.
        tab.http.cookies.update(browser.http.cookies)
        return _code_form(tab, tenant, code)

    tabs = [Browser(node.url, 99) for _ in range(PARALLEL)]
    answers = at_once(tabs, form, lambda tab, data: tab.post(f"/{tenant}/register/code", data))

    _no_server_error(answers)
    registered = [a for a in answers if a.headers.get("Location") == f"/{tenant}/register/sent"]
    assert len(registered) == 1
    # The others: the code is spent, or (when the winner's answer has already ended the
    # registration in the shared session) the registration starts again; never a second account.
    assert all((a.status_code == 400 and "plus valable" in a.text)
               or (a.status_code == 303 and a.headers.get("Location") == f"/{tenant}/register")
               for a in answers if a not in registered), [
        (a.status_code, a.headers.get("Location")) for a in answers if a not in registered]
    assert db.scalar(select(func.count()).select_from(Account)) == 1
    assert all(len(_mails(db, template)) == 1 for template in welcome_emails)


# -- review decisions: twenty operators at once ---------------------------------------------------


@pytest.fixture
def review_request(db, registry, client):
    page = client.get("/malakoff/register")
    sms_code_step(client, "malakoff", client.post("/malakoff/register", data={
        **REGISTRATION, "first_name": "Jean-Piere", "csrf_token": csrf_token(page.data)}))
    request = db.scalar(select(RegistrationRequest))
    assert request is not None and request.status == "pending"
    return request


@SHARED_STORES
def test_twenty_operators_deciding_one_request_decide_it_once(app, db, review_request):
    """Twenty `idp review approve|reject` at once, each in its own thread, application
    context and database session (as twenty operators' commands would be)."""
    decisions = [["approve"] if n % 2 else ["reject", "--reason", "not the member"]
                 for n in range(PARALLEL)]
    start = threading.Barrier(PARALLEL)

    def decide(args: list[str]) -> str:
        start.wait(timeout=30)
        try:
            main.main(["review", args[0], "--tenant", "malakoff", str(review_request.id),
                       *args[1:]], standalone_mode=False, obj=ScriptInfo(create_app=lambda: app))
        except click.ClickException as exc:  # what the operator reads, with exit status 1
            return f"refused: {exc.format_message()}"
        return args[0]

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(decide, decisions))

    decided = [outcome for outcome in outcomes if not outcome.startswith("refused")]
    assert len(decided) == 1, outcomes
    assert all(re.fullmatch(rf"refused: request {review_request.id} was already (approved|rejected)",
                            outcome) for outcome in outcomes if outcome not in decided), outcomes
    db.expire_all()
    request = db.get(RegistrationRequest, review_request.id)
    approved = decided == ["approve"]
    assert request.status == ("approved" if approved else "rejected")
    assert len(_mails(db, "activation")) == (1 if approved else 0)
    assert len(_mails(db, "registration_rejected")) == (0 if approved else 1)
    assert _events(db, events.REVIEW_APPROVED) + _events(db, events.REVIEW_REJECTED) == 1

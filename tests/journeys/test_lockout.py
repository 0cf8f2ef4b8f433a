"""Wrong passwords at sign-in and on the account pages (SPEC §5, §9): every check counted
before it runs, others' failures slowing an identifier down without locking the member out
of their own browser, and a session ended by too many wrong passwords given again."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from idp import events, ratelimit
from idp.events import AuditEvent
from idp.ratelimit import RateLimiter
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, query, without_csrf_tokens
from tests.servers import node_environment


def _attempt(http, identifier: str, password: str, tenant: str = "malakoff"):
    """The sign-in form, posted without an authorization request."""
    page = http.get(f"/{tenant}/login")
    return http.post(f"/{tenant}/login", data={
        "identifier": identifier, "password": password, "csrf_token": csrf_token(page.data)})


def _wait_is_over(app, identifier: str, tenant: str = "malakoff") -> None:
    """Let the identifier's current wait end (what the clock would do)."""
    key = RateLimiter(app.extensions["idp"].store, ratelimit.LOGIN_PER_IDENTIFIER)._key(
        f"{tenant}:{identifier}")
    app.extensions["idp"].store.delete(f"{key}:wait")


def _count(db, tag: str, **where) -> int:
    db.expire_all()
    query_ = select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == tag)
    for column, value in where.items():
        query_ = query_.where(getattr(AuditEvent, column) == value)
    return db.scalar(query_)


# Progressive waits, alike for every identifier typed.

def _failures(app, client, identifier: str) -> list[tuple[int, str | None]]:
    """Five wrong passwords, then a wrong one at the end of each wait: statuses and waits."""
    answers = [_attempt(client, identifier, "wrong") for _ in range(5)]
    for _ in range(5):
        # Refused during the wait, whatever is typed, and the wait does not grow.
        assert _attempt(client, identifier, PASSWORD).status_code == 429
        _wait_is_over(app, identifier)
        answers.append(_attempt(client, identifier, "wrong"))
    return [(answer.status_code, answer.headers.get("Retry-After")) for answer in answers]


def test_wrong_passwords_slow_sign_in_down_more_and_more(app, client, member):
    answers = _failures(app, client, member.email)

    assert [status for status, _wait in answers] == [401] * 4 + [429] * 6
    waits = [int(wait) for _status, wait in answers[4:]]
    expected = [30, 60, 120, 240, 480, 900]
    # Redis rounds a time to live down to the second it is in.
    assert all(want - 1 <= wait <= want for wait, want in zip(waits, expected, strict=True)), waits


def test_an_unknown_identifier_waits_exactly_like_a_known_one(app, client, member):
    known = _failures(app, client, member.email)
    unknown = _failures(app, client, "nobody@example.org")

    assert [status for status, _ in unknown] == [status for status, _ in known]
    assert all(abs(int(a or 0) - int(b or 0)) <= 1
               for (_, a), (_, b) in zip(known, unknown, strict=True)), (known, unknown)
    assert without_csrf_tokens(_attempt(client, member.email, "wrong")) == without_csrf_tokens(
        _attempt(client, "nobody@example.org", "wrong"))


def test_the_refusal_says_when_sign_in_resumes_and_how_to_unblock_it(client, member):
    for _ in range(5):
        refused = _attempt(client, member.email, "wrong")
    assert refused.status_code == 429
    assert "la connexion reprendra dans 30\u00a0secondes".encode() in refused.data
    assert "réinitialisez votre mot de passe".encode() in refused.data
    page = refused.get_data(as_text=True)
    assert '<a class="button" href="/malakoff/forgot-password">Réinitialiser mon mot de passe</a>' in page
    assert "Retour à la connexion" in page


def test_the_right_password_after_the_wait_signs_in_and_starts_afresh(app, client, member):
    for _ in range(5):
        _attempt(client, member.email, "wrong")
    _wait_is_over(app, member.email)

    signed_in = _attempt(client, member.email, PASSWORD)

    assert signed_in.status_code == 303 and signed_in.headers["Location"].endswith("/login/code")
    statuses = [_attempt(client, member.email, "wrong").status_code for _ in range(5)]
    assert statuses == [401] * 4 + [429]


# The member's own browser.

def test_others_failures_do_not_lock_the_member_out_of_a_browser_they_signed_in_from(
        app, flow, db):
    flow.code()  # this browser completed a sign-in: it is known
    attacker = app.test_client()
    for _ in range(8):
        _attempt(attacker, flow.identifier, "wrong")
    assert _attempt(attacker, flow.identifier, PASSWORD).status_code == 429
    assert _attempt(app.test_client(), flow.identifier, PASSWORD).status_code == 429

    answer = flow.login(flow.authorize(prompt="login"))

    assert "code" in query(answer.headers["Location"])
    # That sign-in cleared the identifier's count: the attacker starts again from zero.
    assert _attempt(attacker, flow.identifier, "wrong").status_code == 401


def test_the_known_browser_has_its_own_budget_of_wrong_passwords(app, flow, db):
    flow.code()
    # Its own typos are not slowed down by anyone, up to its budget of 5 a day.
    for _ in range(ratelimit.LOGIN_KNOWN_BROWSER.limit):
        assert _attempt(flow.http, flow.identifier, "wrong").status_code == 401
    # Then it is a browser like any other: the identifier's count applies (a copied cookie
    # buys no more guesses).
    statuses = [_attempt(flow.http, flow.identifier, "wrong").status_code for _ in range(6)]
    assert statuses == [401] * 4 + [429] * 2
    assert _attempt(flow.http, flow.identifier, PASSWORD).status_code == 429
    assert _count(db, events.LOGIN_FAILURE, account_id=flow.account.id) == 10
    # The address counted each wrong password checked once, whichever budget it went to, and
    # none of the checks refused.
    per_address = RateLimiter(app.extensions["idp"].store, ratelimit.LOGIN_PER_IP)
    assert per_address.remaining("127.0.0.1") == ratelimit.LOGIN_PER_IP.limit - 10


def test_the_known_browser_is_still_bounded_per_address(app, flow, monkeypatch):
    flow.code()
    monkeypatch.setattr(ratelimit, "LOGIN_PER_IP", ratelimit.Limit("login:ip", 3, 900))
    for _ in range(3):
        assert _attempt(flow.http, flow.identifier, "wrong").status_code == 401

    refused = _attempt(flow.http, flow.identifier, PASSWORD)

    assert refused.status_code == 429


def test_a_right_password_is_not_counted_against_the_address(app, client, make, monkeypatch):
    monkeypatch.setattr(ratelimit, "LOGIN_PER_IP", ratelimit.Limit("login:ip", 3, 900))
    members = [make.account("malakoff") for _ in range(5)]
    for member in members:
        assert _attempt(app.test_client(), member.email, PASSWORD).status_code == 303


def test_a_known_browser_cookie_of_another_account_changes_nothing(app, flow, make):
    flow.code()
    other = make.account("malakoff")
    for _ in range(5):
        _attempt(app.test_client(), other.email, "wrong")

    assert _attempt(flow.http, other.email, PASSWORD).status_code == 429


# Parallel guesses against a real server.

@pytest.mark.server
@pytest.mark.skipif(not (DATABASE_URL and REDIS_URL),
                    reason="parallel workers need a shared PostgreSQL and Redis: set "
                           "IDP_TEST_DATABASE_URL and IDP_TEST_REDIS_URL")
def test_parallel_guesses_get_no_more_password_checks_than_the_limit(
        settings, make, db, provider_nodes):
    # Real argon2 costs: each check takes as long as in production.
    environment = node_environment(settings, cookie_secure=False, argon2_time_cost=2,
                                   argon2_memory_cost=19456)
    node = provider_nodes(environment, workers=6)
    member = make.account("malakoff")
    browsers = []
    for _ in range(20):
        browser = requests.Session()
        page = browser.get(f"{node.url}/malakoff/login", timeout=10)
        browsers.append((browser, csrf_token(page.content)))
    start = threading.Barrier(len(browsers))
    statuses: list[int] = []

    def guess(browser: requests.Session, token: str) -> None:
        start.wait()
        answer = browser.post(f"{node.url}/malakoff/login", timeout=30, allow_redirects=False,
                              data={"identifier": member.email, "password": "wrong",
                                    "csrf_token": token})
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=guess, args=pair) for pair in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    limit = ratelimit.LOGIN_PER_IDENTIFIER.limit
    assert _count(db, events.LOGIN_FAILURE, account_id=member.id) == limit
    assert Counter(statuses) == {401: limit - 1, 429: len(browsers) - limit + 1}
    for browser, _token in browsers:
        browser.close()


# The password asked again on the account pages.

def _again(flow, page: str, given: str, **fields):
    """Post an account-page form that asks the password again (``given``)."""
    form = flow.http.get(f"/malakoff/{page}")
    assert form.status_code == 200, page
    return flow.http.post(f"/malakoff/{page}", data={
        "current_password": given, "csrf_token": csrf_token(form.data), **fields})


PAGES = [
    ("account/email", {"email": "autre@example.net", "email_confirm": "autre@example.net"}),
    ("account/mobile", {"mobile": "07 81 99 88 77"}),
    ("account/password", {"password": "Bruyere-Monts-Arree-29!",
                          "password_confirm": "Bruyere-Monts-Arree-29!"}),
    ("account/delete", {"confirm": "y"}),
    ("account/passkeys/new", {}),
]


def test_wrong_passwords_given_again_are_counted_per_account_audited_and_end_the_session(
        flow, db):
    flow.code()
    # Four wrong ones, on four different pages: each said next to the field, each audited.
    for page, fields in PAGES[:4]:
        answer = _again(flow, page, "wrong", **fields)
        assert answer.status_code == 400 and b"Mot de passe actuel incorrect" in answer.data
    assert _count(db, events.REAUTH_FAILURE, account_id=flow.account.id) == 4
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == events.REAUTH_FAILURE))
    assert event.data["page"] == "contact.change_email" and event.ip

    ended = _again(flow, *PAGES[4][:1], "wrong")

    assert ended.status_code == 303
    assert ended.headers["Location"].endswith("/malakoff/login?ended=password-again")
    told = flow.http.get(ended.headers["Location"])
    assert "votre session a été fermée après plusieurs mots de passe incorrects".encode() in told.data
    assert flow.http.get("/malakoff/account").headers["Location"].endswith("/malakoff/login")
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    assert _count(db, events.REAUTH_FAILURE, account_id=flow.account.id) == 5
    assert _count(db, events.REAUTH_LOCKED, account_id=flow.account.id) == 1


def test_once_the_limit_is_reached_another_session_is_ended_without_a_check(app, flow, db):
    flow.code()
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    other.code()
    for _ in range(5):
        _again(flow, "account/email", "wrong", **PAGES[0][1])

    # Even the right password: no check runs while the limit holds.
    ended = _again(other, "account/email", PASSWORD, **PAGES[0][1])

    assert ended.status_code == 303 and "ended=password-again" in ended.headers["Location"]
    assert _count(db, events.REAUTH_FAILURE, account_id=flow.account.id) == 5
    assert _count(db, events.REAUTH_LOCKED, account_id=flow.account.id) == 2


def test_a_sign_in_with_the_password_gives_a_fresh_count(flow):
    flow.code()
    for _ in range(5):
        _again(flow, "account/email", "wrong", **PAGES[0][1])

    flow.code(prompt="login")

    assert _again(flow, "account/email", "wrong", **PAGES[0][1]).status_code == 400
    sent = _again(flow, "account/email", PASSWORD, **PAGES[0][1])
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/account/email/confirm")


def test_a_right_password_given_again_clears_the_count(flow):
    flow.code()
    for _ in range(4):
        _again(flow, "account/mobile", "wrong", **PAGES[1][1])
    assert _again(flow, "account/mobile", PASSWORD, **PAGES[1][1]).status_code == 303

    for _ in range(4):
        assert _again(flow, "account/mobile", "wrong", **PAGES[1][1]).status_code == 400

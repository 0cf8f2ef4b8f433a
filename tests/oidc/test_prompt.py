"""prompt, max_age, login_hint, id_token_hint and acr_values (OIDC Core 3.1.2.1)."""

from __future__ import annotations

import re
import time

import pytest

from tests.flows import Flow, query, sign_in_over, without_csrf_tokens


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_that_needs_a_sign_in_is_answered_with_the_sign_in_page(flow, method):
    """The page itself, not a redirect to it: one round trip fewer before the member sees it."""
    page = flow.authorize(method)
    assert page.status_code == 200
    assert "Location" not in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert b'<form method="post" action="/malakoff/login" novalidate>' in page.data
    signed_in = flow.login(page)
    assert signed_in.status_code == 303
    assert "code" in query(signed_in.headers["Location"])


def test_the_sign_in_page_at_its_own_address_shows_the_same_request(flow):
    page, interaction = flow.sign_in_page(flow.authorize(login_hint="jeanne@example.org"))
    again = flow.http.get("/malakoff/login", query_string={"interaction": interaction})
    form = lambda html: html[html.index(b"<main"):html.index(b"</form>")]  # noqa: E731
    assert form(without_csrf_tokens(again)) == form(without_csrf_tokens(page))
    assert b'value="jeanne@example.org"' in form(page.data)


def test_a_refreshed_sign_in_page_asks_again_and_either_page_signs_in(flow):
    first, first_interaction = flow.sign_in_page(flow.authorize())
    refreshed, refreshed_interaction = flow.sign_in_page(flow.authorize())
    assert refreshed_interaction != first_interaction
    assert "code" in query(flow.login(refreshed).headers["Location"])
    assert "code" in query(flow.login(first).headers["Location"])


def test_prompt_none_without_a_session_answers_login_required(flow):
    response = flow.authorize(prompt="none")
    params = query(response.headers["Location"])
    assert params["error"] == "login_required"
    assert params["iss"] == "http://localhost/malakoff"
    assert params["state"].startswith("st-")


def test_prompt_none_with_a_session_issues_a_code_silently(flow):
    flow.code()
    response = flow.authorize(prompt="none")
    assert "code" in query(response.headers["Location"])


def test_prompt_login_asks_again_even_with_a_session(flow):
    flow.code()
    response = flow.authorize(prompt="login")
    assert response.status_code == 200 and b'name="password"' in response.data
    final = flow.login(response)
    assert "code" in query(final.headers["Location"])


def test_max_age_zero_forces_a_fresh_sign_in_and_reports_auth_time(flow, monkeypatch):
    first = flow.id_token_claims(flow.tokens()["id_token"])
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    response = flow.authorize(max_age="0")
    assert response.status_code == 200 and b'name="password"' in response.data
    code = query(flow.login(response).headers["Location"])["code"]
    claims = flow.id_token_claims(flow.token(code).json["id_token"])
    assert claims["auth_time"] >= first["auth_time"] + 5


def test_max_age_still_met_reuses_the_session(flow):
    flow.code()
    response = flow.authorize(max_age="3600")
    assert "code" in query(response.headers["Location"])


def test_login_hint_prefills_the_identifier(flow):
    page, _interaction = flow.sign_in_page(flow.authorize(login_hint="jeanne@example.org"))
    assert b'value="jeanne@example.org"' in page.data


def test_id_token_hint_for_the_signed_in_member_is_accepted(flow):
    id_token = flow.tokens()["id_token"]
    response = flow.authorize(prompt="none", id_token_hint=id_token)
    assert "code" in query(response.headers["Location"])


def test_id_token_hint_for_another_member_requires_sign_in(app, make, flow):
    other_browser = Flow(app.test_client(), "malakoff", flow.rp, make.account("malakoff"))
    other_token = other_browser.tokens()["id_token"]
    flow.code()
    response = flow.authorize(prompt="none", id_token_hint=other_token)
    assert query(response.headers["Location"])["error"] == "login_required"


def test_id_token_hint_from_another_issuer_is_refused(client, make, flow):
    miel = Flow(client, "miel", make.client("miel"), make.account("miel"))
    miel_token = miel.tokens()["id_token"]
    response = flow.authorize(id_token_hint=miel_token)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_ui_locales_chooses_the_language_of_the_sign_in_page(flow):
    page, _interaction = flow.sign_in_page(flow.authorize(ui_locales="en-GB fr"))
    assert b'<html lang="en">' in page.data
    assert b"Sign in to your Espace Client" in page.data
    # Kept for the pages that follow.
    assert b'<html lang="en">' in flow.login(flow.authorize(), password="wrong-password").data


def test_wrong_password_keeps_the_member_on_the_sign_in_page(flow):
    response = flow.login(flow.authorize(), password="wrong-password")
    assert response.status_code == 401
    assert b"Identifiant ou mot de passe incorrect." in response.data


def test_unknown_identifier_gets_the_same_answer_as_a_wrong_password(flow):
    wrong_password = flow.login(flow.authorize(), password="wrong-password")
    unknown = flow.login(flow.authorize(), identifier="nobody@example.org")
    assert unknown.status_code == wrong_password.status_code == 401
    # Up to the form's CSRF token, without what differs between two requests in the time-limit
    # notice: its values (interaction, time left) and the link starting the request again.
    strip = lambda html: re.sub(  # noqa: E731
        rb'(data-deadline[\w-]*="|href="[^"?]*/authorize\?)[^"]*"', rb'\1"',
        html.split(b'name="csrf_token"')[0])
    assert strip(unknown.data).replace(b"nobody@example.org", b"X") == strip(
        wrong_password.data).replace(flow.identifier.encode(), b"X")


def test_sign_in_renews_the_session_id(flow):
    before = flow.http.get_cookie("__Host-idp-session")
    response = flow.authorize()
    pre_login = flow.http.get_cookie("__Host-idp-session").value
    assert response.status_code == 200
    flow.login(response)
    assert before is None
    assert flow.http.get_cookie("__Host-idp-session").value != pre_login


def test_resume_finishes_a_request_whose_sign_in_was_done(flow):
    """A browser sent to /authorize/resume by an earlier version (during a rolling deploy),
    its request marked signed in: the code, as the sign-in page's answer would have sent."""
    flow.code()
    _page, interaction = flow.sign_in_page(flow.authorize(prompt="login"))
    with flow.http.session_transaction() as session:
        parked = session["parked"]
        parked[interaction]["login_done"] = True
        session["parked"] = parked
    resumed = flow.http.get("/malakoff/authorize/resume", query_string={"interaction": interaction})
    assert resumed.status_code == 302
    assert "code" in query(resumed.headers["Location"])
    again = flow.http.get("/malakoff/authorize/resume", query_string={"interaction": interaction})
    sign_in_over(again)  # finished: used once


def test_expired_interaction_shows_a_page(flow):
    response = flow.http.get("/malakoff/authorize/resume?interaction=unknown")
    assert response.status_code == 400
    assert "Location" not in response.headers

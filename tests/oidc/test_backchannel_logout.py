"""OpenID Connect Back-Channel Logout 1.0: a relying party is told, by a signed logout token
posted by the worker, whenever a provider session that signed in to it ends; the session's
tokens end with it."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from idp.channels.models import Message
from idp.events import BACKCHANNEL_LOGOUT_FAILED, AuditEvent
from idp.oidc.models import ProviderSession
from tests.factories import PASSWORD
from tests.flows import Flow, csrf_token, query
from tests.journeys.test_factor_changes import CHANGES

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Mobile Safari/537.36")
WINDOWS_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
NEW_PASSWORD = "Bruyere-Monts-Arree-29!"


@dataclass
class LogoutReceiver:
    """A stand-in relying party's back-channel logout endpoint on a real local port.

    ``statuses``: the answers to give, one per request (then 200); ``delay``: how long to
    hold each request before answering.
    """

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    tokens: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    def __post_init__(self):
        receiver = self
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                receiver.tokens.extend(form.get("logout_token", []))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                if receiver.delay:
                    receiver.release.wait(receiver.delay)
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda _request, _address: None
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def settings(settings):
    return {**settings, "backchannel_logout_retry_base_seconds": 1,
            "backchannel_logout_max_attempts": 3, "backchannel_logout_timeout_seconds": 1}


@pytest.fixture
def receiver():
    found = LogoutReceiver()
    yield found
    found.close()


@pytest.fixture
def portal(rp, db, receiver):
    rp.backchannel_logout_uri = receiver.uri
    db.commit()
    return rp


def browser(app, user_agent: str):
    http = app.test_client()
    http.environ_base["HTTP_USER_AGENT"] = user_agent
    return http


def signed_in(app, portal, member, user_agent: str = ANDROID_CHROME) -> tuple[Flow, dict]:
    """A browser signed in to the portal, with the portal's tokens (refresh token included)."""
    flow = Flow(browser(app, user_agent), "malakoff", portal, member)
    return flow, flow.tokens(scope="openid profile offline_access")


def run_worker(runner):
    result = runner.invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output


def verified(flow: Flow, token: str) -> dict:
    """The checks of Back-Channel Logout 1.0 2.6, as the relying party makes them."""
    keys = KeySet.import_key_set(flow.http.get("/malakoff/jwks").json)
    decoded = jwt.decode(token, keys)
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.header["kid"] in {key["kid"] for key in flow.http.get("/malakoff/jwks").json["keys"]}
    claims = decoded.claims
    issuer = flow.http.get("/malakoff/.well-known/openid-configuration").json["issuer"]
    assert claims["iss"] == issuer
    assert claims["aud"] == flow.rp.client_id
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert claims["jti"]
    now = time.time()
    assert claims["iat"] <= now + 5 and now < claims["exp"] <= now + 300
    return claims


def sids_told(flow: Flow, receiver: LogoutReceiver) -> list[str]:
    told = [verified(flow, token) for token in receiver.tokens]
    assert all(claims["sub"] == flow.account.id for claims in told)
    return sorted(claims["sid"] for claims in told)


def sid_of(flow: Flow, tokens: dict) -> str:
    return flow.id_token_claims(tokens["id_token"])["sid"]


def refused(flow: Flow, tokens: dict) -> bool:
    answer = flow.refresh(tokens["refresh_token"])
    return answer.status_code == 400 and answer.json["error"] == "invalid_grant"


def test_discovery_advertises_back_channel_logout(client):
    document = client.get("/malakoff/.well-known/openid-configuration").json
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True


def test_rp_initiated_logout_tells_the_portal_and_ends_the_sessions_tokens(app, portal, member,
                                                                           receiver, runner):
    flow, tokens = signed_in(app, portal, member)
    sid = sid_of(flow, tokens)
    # The sid is not the session cookie's value.
    assert sid and sid not in [cookie.value for cookie in flow.http._cookies.values()]

    asked = flow.http.get("/malakoff/logout", query_string={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": portal.post_logout_redirect_uris[0]})
    page = flow.http.get(asked.headers["Location"])
    done = flow.http.post("/malakoff/logout/confirm",
                          data={"confirm": "1", "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    # Posted after the commit, by the worker: the request never waited for the portal.
    assert receiver.tokens == []
    run_worker(runner)

    assert sids_told(flow, receiver) == [sid]
    assert receiver.content_types == ["application/x-www-form-urlencoded"]
    assert refused(flow, tokens)
    # Sent once: the worker finds nothing more to send.
    run_worker(runner)
    assert len(receiver.tokens) == 1


def _account_page(flow: Flow):
    page = flow.http.get("/malakoff/account")
    assert page.status_code == 200
    return page


def _sessions_section(page: str) -> str:
    """The account page's list of sessions (the recent sign-ins below name devices too)."""
    start = page.index('<section aria-labelledby="sessions-title">')
    return page[start:page.index("</section>", start)]


def test_the_account_page_lists_the_sessions_and_ends_another_one(app, portal, member, receiver,
                                                                  runner):
    here, here_tokens = signed_in(app, portal, member, ANDROID_CHROME)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)

    page = _account_page(here)
    text = page.data.decode()
    assert "Sessions actives" in text
    assert "Chrome sur Android" in text and "Firefox sur Windows" in text
    assert text.count("(cette session)") == 1
    # Held to the device's name: it never starts a line of its own.
    assert 'Chrome sur Android\u00a0<strong class="badge">(cette session)</strong>' in text
    assert (text.index("Chrome sur Android") < text.index("(cette session)")
            < text.index("Firefox sur Windows"))
    assert text.count("Portail de test") == 2
    assert "Se déconnecter de toutes les autres sessions" in text

    there_sid = sid_of(there, there_tokens)
    ended = here.http.post("/malakoff/account/sessions/end", data={
        "session": there_sid, "confirm": "1", "csrf_token": csrf_token(page.data)})
    assert ended.status_code == 303 and "changed=session-ended" in ended.headers["Location"]
    run_worker(runner)

    assert sids_told(here, receiver) == [there_sid]
    assert refused(there, there_tokens)
    assert not refused(here, here_tokens)
    # The other browser is signed out; this one is not, and lists itself only.
    assert there.http.get("/malakoff/account").status_code == 303
    text = _sessions_section(_account_page(here).data.decode())
    assert "Firefox sur Windows" not in text and "Chrome sur Android" in text
    assert "Se déconnecter de toutes les autres sessions" not in text


FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                 "octobre", "novembre", "décembre")


def _in_paris(moment: datetime) -> str:
    """A stored moment (naive UTC) as a member in France reads it: "3 décembre 2026 à 9 h 52"
    (no-break spaces around the "h")."""
    local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    return (f"{local.day} {FRENCH_MONTHS[local.month - 1]} {local.year} à "
            f"{local.hour}\u00a0h\u00a0{local.minute:02d}")


def _row_of(section: str, device: str) -> str:
    start = section.index(device)
    return section[start:section.index("</tr>", start)]


def test_each_session_says_when_it_started_and_was_last_seen_in_paris_time(app, portal, member,
                                                                           db):
    here, _tokens = signed_in(app, portal, member, ANDROID_CHROME)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    # The other browser signed in three hours ago and was last seen twenty minutes ago.
    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    started, seen = now - timedelta(hours=3), now - timedelta(minutes=20)
    stored = db.get(ProviderSession, sid_of(there, there_tokens))
    stored.started_at, stored.last_seen_at = started, seen
    db.commit()

    row = _row_of(_sessions_section(_account_page(here).data.decode()), "Firefox sur Windows")
    assert f">{_in_paris(started)}</td>" in row and f">{_in_paris(seen)}</td>" in row
    assert "Portail de test" in row
    # Times in words in Paris time, never the stored UTC.
    assert f"{started.hour}\u00a0h\u00a0{started.minute:02d}" not in row

    # That browser comes back: it is seen now.
    assert there.http.get("/malakoff/account").status_code == 200
    row = _row_of(_sessions_section(_account_page(here).data.decode()), "Firefox sur Windows")
    assert f">{_in_paris(started)}</td>" in row and f">{_in_paris(seen)}</td>" not in row
    db.expire_all()
    assert db.get(ProviderSession, sid_of(there, there_tokens)).last_seen_at >= now


def test_this_session_is_not_ended_from_its_own_list(app, portal, member, receiver, runner):
    here, tokens = signed_in(app, portal, member)
    page = here.http.get("/malakoff/account/password")
    answer = here.http.post("/malakoff/account/sessions/end", data={
        "session": sid_of(here, tokens), "confirm": "1", "csrf_token": csrf_token(page.data)})
    assert "changed=session-gone" in answer.headers["Location"]
    run_worker(runner)
    assert receiver.tokens == []
    assert _account_page(here).status_code == 200


def test_a_session_of_another_member_cannot_be_ended(app, portal, member, make, receiver, runner):
    other = make.account("malakoff")
    theirs, their_tokens = signed_in(app, portal, other, WINDOWS_FIREFOX)
    mine, _tokens = signed_in(app, portal, member)
    page = mine.http.get("/malakoff/account/password")
    mine.http.post("/malakoff/account/sessions/end", data={
        "session": sid_of(theirs, their_tokens), "confirm": "1", "csrf_token": csrf_token(page.data)})
    run_worker(runner)
    assert receiver.tokens == []
    assert not refused(theirs, their_tokens)


def test_ending_a_session_needs_the_csrf_token(app, portal, member, receiver, runner):
    here, _tokens = signed_in(app, portal, member)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    answer = here.http.post("/malakoff/account/sessions/end-others", data={"confirm": "1"})
    assert answer.status_code in (400, 303)
    run_worker(runner)
    assert receiver.tokens == []
    assert not refused(there, there_tokens)


def test_sign_out_of_all_other_sessions(app, portal, member, receiver, runner):
    here, here_tokens = signed_in(app, portal, member)
    others = [signed_in(app, portal, member, WINDOWS_FIREFOX) for _ in range(2)]
    page = _account_page(here)
    answer = here.http.post("/malakoff/account/sessions/end-others", data={
        "confirm": "1", "csrf_token": csrf_token(page.data)})
    assert "changed=sessions-ended" in answer.headers["Location"]
    assert "Vos autres sessions sont déconnectées" in here.http.get(answer.headers["Location"]).data.decode()
    run_worker(runner)

    assert sids_told(here, receiver) == sorted(sid_of(flow, tokens) for flow, tokens in others)
    assert all(refused(flow, tokens) for flow, tokens in others)
    assert not refused(here, here_tokens)


def test_a_password_change_tells_the_portals_of_the_other_sessions(app, portal, member, receiver,
                                                                   runner):
    here, _tokens = signed_in(app, portal, member)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    page = here.http.get("/malakoff/account/password")
    changed = here.http.post("/malakoff/account/password", data={
        "current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
        "csrf_token": csrf_token(page.data)})
    assert changed.status_code == 303
    run_worker(runner)
    # This browser stays signed in (SPEC §6): its portal is not told.
    assert sids_told(here, receiver) == [sid_of(there, there_tokens)]
    assert _account_page(here).status_code == 200


def test_deleting_the_account_tells_the_portals(app, portal, member, receiver, runner):
    here, tokens = signed_in(app, portal, member)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    page = here.http.get("/malakoff/account/delete")
    deleted = here.http.post("/malakoff/account/delete", data={
        "current_password": PASSWORD, "confirm": "y", "csrf_token": csrf_token(page.data)})
    assert deleted.status_code == 303
    run_worker(runner)
    assert sids_told(here, receiver) == sorted([sid_of(here, tokens), sid_of(there, there_tokens)])


@pytest.mark.parametrize("command", [
    ["accounts", "sign-out", "--tenant", "malakoff"],
    ["accounts", "set-contact", "--tenant", "malakoff", "--phone", "0611223344"],
    ["accounts", "set-password", "--tenant", "malakoff"],
])
def test_support_commands_tell_the_portals(app, portal, member, receiver, runner, command):
    sessions = [signed_in(app, portal, member), signed_in(app, portal, member, WINDOWS_FIREFOX)]
    result = runner.invoke(args=[*command, member.email], input=f"{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    run_worker(runner)
    flow = sessions[0][0]
    assert sids_told(flow, receiver) == sorted(sid_of(f, tokens) for f, tokens in sessions)
    assert all(refused(f, tokens) for f, tokens in sessions)
    assert all(f.http.get("/malakoff/account").status_code == 303 for f, _tokens in sessions)


def test_sign_out_command_says_what_it_did(app, portal, member, receiver, runner):
    signed_in(app, portal, member)
    signed_in(app, portal, member, WINDOWS_FIREFOX)
    result = runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id])
    assert result.exit_code == 0
    assert result.output == (f"account {member.id} signed out: 2 session(s) ended, "
                             "2 portal notification(s) queued\n")
    again = runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id])
    assert again.output.endswith("0 session(s) ended, 0 portal notification(s) queued\n")
    unknown = runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert unknown.output == "Error: no account 'nobody@example.org' in malakoff\n"
    other_tenant = runner.invoke(args=["accounts", "sign-out", "--tenant", "miel", member.id])
    assert other_tenant.exit_code == 1


def test_a_failing_portal_gets_the_token_again_until_it_answers(app, portal, member, receiver,
                                                                runner, db):
    receiver.statuses = [503, 500]
    flow, tokens = signed_in(app, portal, member)
    assert runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id]).exit_code == 0
    run_worker(runner)
    assert len(receiver.tokens) == 1
    message = db.scalar(select(Message).where(Message.channel == "logout"))
    assert message.status == "pending" and message.attempts == 1
    assert message.last_error == "logout endpoint answered HTTP 503"
    time.sleep(1.1)
    run_worker(runner)
    time.sleep(2.1)
    run_worker(runner)
    db.expire_all()
    assert message.status == "sent" and message.attempts == 3
    # Each attempt carries a fresh token, all of them for the same session.
    assert len(set(receiver.tokens)) == 3
    assert sids_told(flow, receiver) == [sid_of(flow, tokens)] * 3


def test_a_portal_that_keeps_failing_is_given_up_on_and_audited(app, portal, member, receiver,
                                                                runner, db):
    receiver.statuses = [503] * 10
    signed_in(app, portal, member)
    assert runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id]).exit_code == 0
    for wait in (0, 1.1, 2.1):
        time.sleep(wait)
        run_worker(runner)
    message = db.scalar(select(Message).where(Message.channel == "logout"))
    assert message.status == "failed" and message.attempts == 3
    audit = db.scalar(select(AuditEvent).where(AuditEvent.tag == BACKCHANNEL_LOGOUT_FAILED))
    assert audit.client_id == portal.client_id and audit.data["attempts"] == 3


def test_a_portal_refusing_the_token_is_not_asked_again(app, portal, member, receiver, runner, db):
    receiver.statuses = [400]
    signed_in(app, portal, member)
    runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id])
    run_worker(runner)
    message = db.scalar(select(Message).where(Message.channel == "logout"))
    assert message.status == "failed" and message.attempts == 1


def test_a_hung_portal_holds_neither_the_page_nor_the_worker(app, portal, member, receiver, runner, db):
    receiver.delay = 30
    flow, tokens = signed_in(app, portal, member)
    started = time.monotonic()
    asked = flow.http.get("/malakoff/logout", query_string={"id_token_hint": tokens["id_token"]})
    page = flow.http.get(asked.headers["Location"])
    done = flow.http.post("/malakoff/logout/confirm",
                          data={"confirm": "1", "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    # The page left the portal to the worker: nothing reached the portal before the page
    # answered, and the page did not wait out the portal's 30 s.
    assert receiver.tokens == []
    assert time.monotonic() - started < 5
    started = time.monotonic()
    run_worker(runner)
    assert len(receiver.tokens) == 1
    # Bounded by backchannel_logout_timeout_seconds (1 s here).
    assert time.monotonic() - started < 5
    message = db.scalar(select(Message).where(Message.channel == "logout"))
    assert message.status == "pending" and "timed out" in message.last_error


def test_a_portal_without_a_back_channel_uri_is_not_told(app, rp, member, runner, db):
    flow = Flow(app.test_client(), "malakoff", rp, member)
    tokens = flow.tokens(scope="openid offline_access")
    runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id])
    assert db.scalar(select(Message).where(Message.channel == "logout")) is None
    assert refused(flow, tokens)


def test_the_portal_signed_in_from_another_session_is_told_for_that_session_only(
        app, portal, member, make, receiver, runner, db):
    second = make.client("malakoff")
    receiver_two = LogoutReceiver()
    try:
        second.backchannel_logout_uri = receiver_two.uri
        db.commit()
        here, here_tokens = signed_in(app, portal, member)
        # The same browser signs in to the second portal: one session, two portals.
        _tokens_without_sign_in(Flow(here.http, "malakoff", second, member))
        there, _tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
        text = _account_page(there).data.decode()
        assert "Portail de test, Portail de test" in text
        runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id])
        run_worker(runner)
        assert len(receiver.tokens) == 2 and len(receiver_two.tokens) == 1
        assert verified(Flow(here.http, "malakoff", second, member), receiver_two.tokens[0])["sid"] == \
            sid_of(here, here_tokens)
    finally:
        receiver_two.close()


def test_the_sid_stays_across_sign_ins_to_more_portals_and_differs_per_browser(app, portal, member):
    flow, tokens = signed_in(app, portal, member)
    again = _tokens_without_sign_in(flow)
    assert sid_of(flow, again) == sid_of(flow, tokens)
    other, other_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    assert sid_of(other, other_tokens) != sid_of(flow, tokens)


def _tokens_without_sign_in(flow: Flow) -> dict:
    """Tokens for a browser already signed in to the provider (no page shown)."""
    answer = flow.token(query(flow.authorize(prompt="none").headers["Location"])["code"])
    assert answer.status_code == 200, answer.json
    return answer.json


def test_signing_in_again_keeps_the_session_and_tells_nobody(app, portal, member, receiver, runner):
    flow, tokens = signed_in(app, portal, member)
    again = flow.token(query(flow.login(flow.authorize(prompt="login")).headers["Location"])["code"]).json
    assert sid_of(flow, again) == sid_of(flow, tokens)
    run_worker(runner)
    assert receiver.tokens == []
    assert not refused(flow, tokens)


def test_another_members_sign_in_in_the_same_browser_ends_the_first_session(
        app, portal, member, make, receiver, runner):
    flow, tokens = signed_in(app, portal, member)
    other = make.account("malakoff")
    Flow(flow.http, "malakoff", portal, other).login(flow.authorize(prompt="login"))
    run_worker(runner)
    assert sids_told(flow, receiver) == [sid_of(flow, tokens)]
    assert refused(flow, tokens)


def test_a_password_reset_tells_the_portals_of_every_session(app, portal, member, receiver, runner, db):
    sessions = [signed_in(app, portal, member), signed_in(app, portal, member, WINDOWS_FIREFOX)]
    other_browser = app.test_client()
    page = other_browser.get("/malakoff/forgot-password")
    other_browser.post("/malakoff/forgot-password", data={
        "identifier": member.email, "csrf_token": csrf_token(page.data)})
    mail = db.scalars(select(Message).where(Message.template == "password_reset")).one()
    link = re.search(r"http://localhost(/malakoff/reset-password/\S+)", mail.body_text)[1]
    page = other_browser.get(link)
    done = other_browser.post(link, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
                                          "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    run_worker(runner)
    flow = sessions[0][0]
    assert sids_told(flow, receiver) == sorted(sid_of(f, tokens) for f, tokens in sessions)


def test_a_session_ended_from_twenty_tabs_at_once_is_told_once(app, portal, member, receiver, runner,
                                                               db):
    here, _tokens = signed_in(app, portal, member)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    token = csrf_token(_account_page(here).data)
    sid = sid_of(there, there_tokens)

    def tab(_number):
        http = browser(app, ANDROID_CHROME)
        for cookie in here.http._cookies.values():
            http.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
        return http.post("/malakoff/account/sessions/end", data={
            "session": sid, "confirm": "1", "csrf_token": token}).headers["Location"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(tab, range(20)))
    assert sum("changed=session-ended" in answer for answer in answers) == 1
    assert sum("changed=session-gone" in answer for answer in answers) == 19
    run_worker(runner)
    assert sids_told(here, receiver) == [sid]
    assert db.scalar(select(func.count()).select_from(AuditEvent)
                     .where(AuditEvent.tag == "account:session:end")) == 1


def test_a_code_of_an_ended_session_is_not_redeemed(app, portal, member, runner):
    flow = Flow(browser(app, ANDROID_CHROME), "malakoff", portal, member)
    code = flow.code(scope="openid offline_access")
    assert runner.invoke(args=["accounts", "sign-out", "--tenant", "malakoff", member.id]).exit_code == 0
    answer = flow.token(code)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_grant"


@pytest.mark.parametrize("change", ["email", "mobile"])
def test_a_members_own_change_of_factor_tells_the_portals_of_the_other_sessions(
        app, portal, member, receiver, runner, change):
    here, _tokens = signed_in(app, portal, member)
    there, there_tokens = signed_in(app, portal, member, WINDOWS_FIREFOX)
    assert CHANGES[change](app, here).status_code == 303
    run_worker(runner)
    assert sids_told(here, receiver) == [sid_of(there, there_tokens)]
    assert _account_page(here).status_code == 200
    assert "Chrome sur Android" in _account_page(here).data.decode()

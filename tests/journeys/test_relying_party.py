"""End to end: a relying party built on Authlib's client completes the code flow with
PKCE against the provider running on a real port (the demo portals)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from idp.demo.setup import DEMO_ACCOUNTS
from tests.conftest import IdpCliRunner
from tests.flows import last_code

pytestmark = pytest.mark.server


def _form(html: str) -> tuple[str, dict[str, str]]:
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    return action, {k: unescape(v) for k, v in fields.items()}


def sign_in(browser, live, account, channel="email"):
    """Password, then a code by email read from the outbox; returns the portal's page."""
    login_page = browser.get(f"{live.portals[account.tenant]}/login", timeout=10)
    action, fields = _form(login_page.text)
    fields.update(identifier=account.identifier, password=account.password)
    choose = browser.post(f"{live.base_url}{action}", data=fields, timeout=10)
    assert choose.url.endswith(f"/{account.tenant}/login/code"), choose.text[:300]
    action, fields = _form(choose.text)
    fields["channel"] = channel
    verify = browser.post(f"{live.base_url}{action}", data=fields, timeout=10)
    action, fields = _form(verify.text)
    fields["code"] = last_code(live.app, channel)
    return browser.post(f"{live.base_url}{action}", data=fields, timeout=10)


@pytest.mark.parametrize("account", [a for a in DEMO_ACCOUNTS if not a.legacy], ids=lambda a: a.tenant)
def test_portal_signs_in_through_the_provider(live, account):
    browser = requests.Session()
    portal = live.portals[account.tenant]

    login_page = browser.get(f"{portal}/login", timeout=10)
    assert login_page.status_code == 200
    # The portal pushed its request (RFC 9126): the browser carries only the reference to it,
    # and the provider answers with the sign-in page.
    assert [answer.status_code for answer in login_page.history] == [302]
    assert 'name="password"' in login_page.text
    to_provider = urlsplit(login_page.url)
    assert to_provider.path == f"/{account.tenant}/authorize"
    sent = parse_qs(to_provider.query)
    assert set(sent) == {"client_id", "request_uri"}
    assert sent["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")

    back = sign_in(browser, live, account)

    assert back.status_code == 200, back.text[:500]
    assert back.url == f"{portal}/"
    assert f"Bonjour {account.given_name}" in back.text
    assert account.member_number in back.text          # member claim shown by the portal
    assert "urn:mh:acr:otp" in back.text                # acr claim: password + code
    # The portal shows the pushed request it signed in with, used once.
    assert re.search(r"<code>urn:ietf:params:oauth:request_uri:[\w-]{43}</code>", back.text)
    assert "une seule utilisation" in back.text
    # The first reference served once, when the browser followed it: brought again by another
    # browser, it is refused (the one that brought it is shown the request it parked, RFC 9126 4).
    again = requests.get(login_page.url, timeout=10)
    assert again.status_code == 400 and "invalid_request_uri" in again.text


@pytest.mark.parametrize("account", [a for a in DEMO_ACCOUNTS if not a.legacy], ids=lambda a: a.tenant)
def test_the_demo_portals_are_required_to_push_their_requests(live, account):
    """A request of the demo portal's client sent straight to /authorize, not pushed, is refused:
    the error goes back to the portal's redirect URI (RFC 9126 6)."""
    browser = requests.Session()
    portal = live.portals[account.tenant]
    client_id = parse_qs(urlsplit(browser.get(f"{portal}/login", timeout=10).history[0]
                                  .headers["Location"]).query)["client_id"][0]
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B

    answer = browser.get(f"{live.base_url}/{account.tenant}/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": f"{portal}/callback",
        "scope": "openid", "state": "not-pushed", "code_challenge": challenge,
        "code_challenge_method": "S256"}, allow_redirects=False, timeout=10)

    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(f"{portal}/callback?")
    assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]


def test_portal_logout_ends_the_provider_session(live):
    account = DEMO_ACCOUNTS[0]
    browser = requests.Session()
    portal = live.portals[account.tenant]
    sign_in(browser, live, account)

    confirm = browser.get(f"{portal}/logout", timeout=10)
    assert confirm.url == f"{live.base_url}/{account.tenant}/logout/confirm"
    action, fields = _form(confirm.text)
    fields.pop("cancel", None)
    done = browser.post(f"{live.base_url}{action}", data=fields, timeout=10)
    assert done.url.startswith(f"{portal}/")
    # Signing in again needs the password: the provider session is gone.
    again = browser.get(f"{portal}/login", timeout=10)
    assert 'name="password"' in again.text


def test_the_portal_is_signed_out_over_the_back_channel_and_says_so(live):
    """The member ends the portal's session from the account page of another browser: the
    worker posts a logout token to the demo portal, which checks it and signs that browser out."""
    account = DEMO_ACCOUNTS[0]
    portal = live.portals[account.tenant]
    at_portal, elsewhere = requests.Session(), requests.Session()
    assert "Bonjour" in sign_in(at_portal, live, account).text
    sign_in(elsewhere, live, account)

    page = elsewhere.get(f"{live.base_url}/{account.tenant}/account", timeout=10).text
    form = re.search(r'<form method="post" action="([^"]+/account/sessions/end-others)">(.*?)</form>',
                     page, re.S)
    assert form, page[:500]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"',
                      form[2])
    ended = elsewhere.post(f"{live.base_url}{unescape(form[1])}",
                           data={"csrf_token": token[1] or token[2], "confirm": "1"}, timeout=10)
    assert "Vos autres sessions sont déconnectées" in ended.text

    result = IdpCliRunner(live.app).invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    home = at_portal.get(f"{portal}/", timeout=10).text
    assert "Le fournisseur d’identité a fermé votre session à" in home
    assert "Notifications de déconnexion reçues" in home and "1 session(s) du portail fermée(s)" in home
    assert "Se connecter</a>" in home


def test_portal_shows_communication_preferences_as_words_not_a_python_dict(live):
    account = next(a for a in DEMO_ACCOUNTS if live.app.extensions["idp"].tenants[a.tenant]
                   .communication_preferences)
    back = sign_in(requests.Session(), live, account)
    assert back.status_code == 200, back.text[:500]
    shown = unescape(back.text)
    [row] = re.findall(r"communication_preferences</code></th><td>([^<]*)</td>", shown)
    assert sorted(row.split("\u00a0; ")) == ["letters\u00a0: post", "marketing\u00a0: false",
                                            "statements\u00a0: email"]
    assert "{'" not in shown and "': " not in shown


def test_favicon_is_served_by_the_provider_and_each_portal_cacheable_and_without_cookie(live):
    for origin in (live.base_url, *live.portals.values()):
        icon = requests.get(f"{origin}/favicon.ico", timeout=10)
        assert icon.status_code == 200, origin
        assert icon.headers["Content-Type"] == "image/vnd.microsoft.icon"
        assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
        assert "max-age=604800" in icon.headers["Cache-Control"]
        assert "public" in icon.headers["Cache-Control"]
        assert "Set-Cookie" not in icon.headers

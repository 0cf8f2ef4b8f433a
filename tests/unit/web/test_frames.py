"""Framed pages (idp.web.rendering.framed): the sign-in page an authorization request is
answered with, and the code's pages, their markup rendered once and filled with each request's
values, are the pages the templates render whole."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner

from idp.accounts.forms import LoginForm
from idp.deadlines import sign_in_deadline
from idp.extensions import current_tenant, find_service
from idp.frames import Frame, marks
from idp.mfa.forms import ChannelForm, CodeForm
from idp.oidc.interactions import Interactions
from idp.signin import state, views
from idp.web import rendering

# Text a browser may send in a query: any character but the surrogates, which no URL can carry.
QUERY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


def _pages(app, monkeypatch, *, tenant: str, lang: str, hint: str, extra: str, seconds_left: int,
           pushed: bool = False) -> tuple[str, str]:
    """The sign-in page framed, then rendered whole, for the same request and values."""
    monkeypatch.setattr(Interactions, "expires_in", lambda _self, _interaction: seconds_left)
    # Each render signs a pushed request's restart link anew: both at the same second, as two
    # renders of one request would be when no second ends between them.
    signed_at = int(time.time())
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: signed_at)
    query = urlencode({"lang": lang, "extra": extra})
    with app.test_request_context(f"/{tenant}/authorize?{query}"):
        app.preprocess_request()
        params = [["client_id", "portal"], ["scope", "openid"], ["extra", extra]]
        if hint:
            params.append(["login_hint", hint])
        interaction = find_service(Interactions).start(tenant, params, "login", ["no_session"], pushed=pushed)
        framed, _status = views.login_page(interaction)
        form = LoginForm(formdata=None, interaction=interaction.id, identifier=hint)
        whole, _status = views._login_page(current_tenant(), form, interaction)
    return framed, whole


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=st.sampled_from(["malakoff", "miel"]), lang=st.sampled_from(["fr", "en"]),
       hint=st.one_of(st.just(""), st.just("2345 6789"), QUERY_TEXT), extra=QUERY_TEXT,
       seconds_left=st.integers(0, 3600), pushed=st.booleans())
def test_the_sign_in_page_from_its_frame_is_the_page_rendered_whole(
        app, monkeypatch, tenant, lang, hint, extra, seconds_left, pushed):
    framed, whole = _pages(app, monkeypatch, tenant=tenant, lang=lang, hint=hint, extra=extra,
                           seconds_left=seconds_left, pushed=pushed)
    assert framed == whole


def test_the_values_are_escaped_where_the_page_writes_them(app, monkeypatch):
    framed, whole = _pages(app, monkeypatch, tenant="malakoff", lang="fr", hint='"><script>x</script>',
                           extra="<&>", seconds_left=900)
    assert framed == whole
    assert "<script>x" not in framed
    assert 'value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in framed
    assert "extra=%3C%26%3E&amp;lang=en" in framed


def test_a_frame_is_rendered_once(app, monkeypatch):
    renders = []
    original = rendering.render_template
    monkeypatch.setattr(rendering, "render_template", lambda *a, **k: renders.append(1) or original(*a, **k))
    page = {"tenant": "malakoff", "lang": "fr", "hint": ""}
    first, _whole = _pages(app, monkeypatch, **page, extra="a", seconds_left=900)
    framed_renders = len(renders) - 1  # the whole page's own
    second, _whole = _pages(app, monkeypatch, **page, extra="b", seconds_left=800)
    assert framed_renders == 1
    assert len(renders) == 3  # the second framed page from the frame, then the whole page
    assert first != second and "extra=b" in second and 'data-deadline="800"' in second


def test_where_templates_reload_a_framed_page_is_rendered_each_time(app, monkeypatch):
    app.jinja_env.auto_reload = True
    renders = []
    original = rendering.render_template
    monkeypatch.setattr(rendering, "render_template", lambda *a, **k: renders.append(1) or original(*a, **k))
    for extra in ("a", "b"):
        framed, whole = _pages(app, monkeypatch, tenant="miel", lang="en", hint="x@example.org",
                               extra=extra, seconds_left=100)
        assert framed == whole
    assert len(renders) == 4
    assert app.jinja_env.frames == {}


@pytest.mark.parametrize("page", [
    "<a href='?v=%EE%80%80v%EE%80%81'>",  # a value gone through a URL's encoding
    "<p>\ue000V\ue001</p>",  # a value changed (upper-cased)
    "<p>\ue000w\ue001</p>",  # a value not given
])
def test_a_page_that_does_more_with_a_value_than_write_it_has_no_frame(page):
    with pytest.raises(ValueError, match="not written as it is given"):
        Frame.of(page, {"v": "\ue000v\ue001"})


def test_a_frame_writes_each_value_escaped_in_its_place():
    frame = Frame.of("<p a=\"\ue000v\ue001\">\ue000w\ue001 \ue000v\ue001</p>", marks(["v", "w"]))
    assert frame.fill({"v": '"&', "w": "<b>"}) == '<p a="&#34;&amp;">&lt;b&gt; &#34;&amp;</p>'


def test_a_text_frame_writes_each_value_as_it_is():
    frame = Frame.of("Code : \ue000code\ue001 (\ue000code\ue001)", marks(["code"]))
    assert frame.fill({"code": "<12&>"}, escaped=False) == "Code : <12&> (<12&>)"


# -- the code's pages -------------------------------------------------------------------------


def _code_pages(app, monkeypatch, *, tenant: str, lang: str, email: str | None, sms: bool, channel: str,
                seconds_left: int | None, code_left: int, delayed: bool) -> dict[str, tuple[str, str]]:
    """The page to choose where the code goes and the page to type it, each framed, then rendered
    whole, for the same request and values."""
    now = 1_800_000_000.0
    monkeypatch.setattr(views.time, "time", lambda: now)
    timing = None if seconds_left is None else state.SignInTime(
        sign_in_deadline(seconds_left, 1200), "i-1", "/authorize?client_id=portal&extra=%3C%26%3E")
    monkeypatch.setattr(state, "sign_in_time", lambda *_args, **_kwargs: timing)
    account = SimpleNamespace(email=email, phone_number="+33612345678", phone_number_verified=sms)
    pending = SimpleNamespace(current_challenge=SimpleNamespace(channel=channel, expires_at=now + code_left))
    with app.test_request_context(f"/{tenant}/login/code?lang={lang}{'&delayed=1' if delayed else ''}"):
        app.preprocess_request()
        on = current_tenant()
        destinations = views._destinations(state.reachable(account))
        first = next(iter(destinations), None)
        return {
            "choose": (views._choose_page(on, destinations)[0],
                       views._choose_page(on, destinations, ChannelForm(formdata=None, channel=first))[0]),
            "verify": (views._verify_page(on, pending, destinations)[0],
                       views._verify_page(on, pending, destinations, CodeForm(formdata=None))[0]),
        }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=st.sampled_from(["malakoff", "miel"]), lang=st.sampled_from(["fr", "en"]),
       email=st.one_of(st.none(), st.emails()), sms=st.booleans(), channel=st.sampled_from(["email", "sms"]),
       seconds_left=st.one_of(st.none(), st.integers(0, 3600)), code_left=st.integers(-5, 900),
       delayed=st.booleans())
def test_the_code_s_pages_from_their_frames_are_the_pages_rendered_whole(
        app, monkeypatch, tenant, lang, email, sms, channel, seconds_left, code_left, delayed):
    pages = _code_pages(app, monkeypatch, tenant=tenant, lang=lang, email=email, sms=sms, channel=channel,
                        seconds_left=seconds_left, code_left=code_left, delayed=delayed)
    for framed, whole in pages.values():
        assert framed == whole


def test_the_code_s_pages_are_framed_once_and_say_where_the_code_went(app, monkeypatch):
    renders = []
    original = rendering.render_template
    monkeypatch.setattr(rendering, "render_template", lambda *a, **k: renders.append(1) or original(*a, **k))
    page = {"tenant": "malakoff", "lang": "fr", "sms": True, "channel": "email", "code_left": 300,
            "delayed": False}
    first = _code_pages(app, monkeypatch, email="jeanne.martin@example.org", seconds_left=900, **page)
    assert len(renders) == 4  # each page's frame, then each page whole
    second = _code_pages(app, monkeypatch, email="paul@example.org", seconds_left=800, **page)
    assert len(renders) == 6  # each page whole only
    assert "par e-mail à j" in first["verify"][0] and "par e-mail à p" in second["verify"][0]
    assert 'data-deadline="300"' in second["verify"][0]
    assert 'data-deadline="800"' in second["choose"][0]
    assert "Par SMS au" in second["choose"][0]

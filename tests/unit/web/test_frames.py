"""Framed pages (idp.web.rendering.framed): the sign-in page an authorization request is
answered with, its markup rendered once and filled with each request's values, is the page
the template renders whole."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idp.accounts.forms import LoginForm
from idp.extensions import current_tenant, find_service
from idp.frames import Frame, marks
from idp.oidc.interactions import Interactions
from idp.signin import views
from idp.web import rendering

# Text a browser may send in a query: any character but the surrogates, which no URL can carry.
QUERY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


def _pages(app, monkeypatch, *, tenant: str, lang: str, hint: str, extra: str, seconds_left: int,
           pushed: bool = False) -> tuple[str, str]:
    """The sign-in page framed, then rendered whole, for the same request and values."""
    monkeypatch.setattr(Interactions, "expires_in", lambda _self, _interaction: seconds_left)
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

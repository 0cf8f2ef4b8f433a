"""A one-time code's message is filled in from frames rendered once (``Messages.queue``'s
``framed``): the same message its templates render, byte for byte."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from idp.channels import services
from idp.channels.services import Messages

EMAIL = "jeanne.martin@example.org"
MOBILE = "+33612345688"
# The messages with a code (``CodeSender.send``'s templates) and the channels they go by.
CODE_MESSAGES = [("email", "otp_code", EMAIL), ("sms", "otp_code", MOBILE), ("email", "email_code", EMAIL),
                 ("sms", "registration_code", MOBILE), ("sms", "mobile_change", MOBILE)]


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


def _written(message) -> tuple:
    return message.subject, message.body_text, message.body_html


@example(message=CODE_MESSAGES[0], tenant="malakoff", locale="fr", ttl_minutes=3, code="<&\"'>")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.sampled_from(CODE_MESSAGES), tenant=st.sampled_from(["malakoff", "miel"]),
       locale=st.sampled_from(["fr", "en"]), ttl_minutes=st.integers(1, 30),
       # A code, or any text without spaces (a message's text is stripped, its subject's spaces
       # folded: a framed value is written as it is), markup's characters included.
       code=st.one_of(st.from_regex(r"\A[0-9]{6}\Z"), st.text(st.characters(
           blacklist_categories=("Cs", "Co", "Z", "Cc")), min_size=1, max_size=12), st.just("<&\"'>")))
def test_a_framed_message_is_the_message_rendered_whole(app, app_ctx, db, channels, message, tenant, locale,
                                                        ttl_minutes, code):
    channel, template, recipient = message
    on = app.extensions["idp"].tenants[tenant]
    reader = SimpleNamespace(locale=locale)
    framed = channels().messages(db)
    whole = channels().messages(db)
    whole.frames = None
    assert framed.frames is not None
    args = (on, channel, template, recipient)
    one = framed.queue(*args, reader=reader, code=code, ttl_minutes=ttl_minutes, framed=("code",))
    other = whole.queue(*args, reader=reader, code=code, ttl_minutes=ttl_minutes)
    assert _written(one) == _written(other)
    db.rollback()


def test_a_code_s_templates_are_rendered_once_then_each_message_is_filled_in(app, app_ctx, db, channels,
                                                                            monkeypatch):
    composed = []
    compose = Messages._compose

    def counting(self, *args):
        composed.append(args[2])
        return compose(self, *args)

    monkeypatch.setattr(Messages, "_compose", counting)
    tenant = app.extensions["idp"].tenants["malakoff"]
    messages = channels().messages(db)
    first, second = (messages.queue(tenant, "email", "otp_code", EMAIL, code=code, ttl_minutes=3,
                                    framed=("code",)) for code in ("111111", "222222"))
    assert composed == ["otp_code"]
    assert "111111" in first.body_text and "111111" in first.body_html
    assert "222222" in second.body_text and "222222" in second.body_html and "111111" not in second.body_html
    # Another value of the rest of the context is another frame.
    third = messages.queue(tenant, "email", "otp_code", EMAIL, code="333333", ttl_minutes=7, framed=("code",))
    assert composed == ["otp_code", "otp_code"]
    assert "7\u00a0minutes" in third.body_text and "3\u00a0minutes" in second.body_text
    db.rollback()


def test_where_templates_reload_messages_are_rendered_whole(app, app_ctx, db, channels):
    app.jinja_env.auto_reload = True
    try:
        assert channels().messages(db).frames is None
    finally:
        app.jinja_env.auto_reload = False
    assert channels().messages(db).frames is not None


def test_a_process_keeps_a_bounded_number_of_frames(app, app_ctx, db, channels, monkeypatch):
    monkeypatch.setattr(services, "MAX_FRAMES", 3)
    tenant = app.extensions["idp"].tenants["malakoff"]
    messages = channels().messages(db)
    messages.frames.clear()
    for minutes in range(1, 8):
        messages.queue(tenant, "sms", "otp_code", MOBILE, code="123456", ttl_minutes=minutes,
                       framed=("code",))
        assert len(messages.frames) <= 3
    db.rollback()


def test_a_code_sent_at_sign_in_is_the_framed_message(app, app_ctx, db, channels, monkeypatch):
    """The sign-in's codes ask for frames (``queue_code``)."""
    asked = []
    queue = Messages.queue

    def recording(self, *args, **kwargs):
        asked.append(kwargs.get("framed"))
        return queue(self, *args, **kwargs)

    monkeypatch.setattr(Messages, "queue", recording)
    tenant = app.extensions["idp"].tenants["malakoff"]
    channels().messages(db).queue_code(tenant, "email", "otp_code", EMAIL, code="123456",
                                       valid_until=datetime(2030, 1, 1))
    assert asked == [("code",)]
    db.rollback()

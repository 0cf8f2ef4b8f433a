"""The channels' settings: defaults, and refusal of values that cannot deliver safely."""

from __future__ import annotations

import pytest

from idp.config import ConfigError, load_settings

PRODUCTION = {"IDP_ENV": "production", "IDP_SECRET_KEY": "x" * 40,
              "IDP_BASE_URL": "https://id.example.org", "IDP_METRICS_TOKEN": "m" * 32}


def test_defaults():
    settings = load_settings(environ={})
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == (
        "localhost", 587, "starttls")
    assert (settings.smtp_username, settings.smtp_password) == ("", "")
    assert settings.mail_from == "Espace membre <no-reply@example.org>"
    assert (settings.sms_gateway_url, settings.sms_gateway_token, settings.sms_sender) == (
        "", "", "MALAKOFF")
    assert (settings.message_max_attempts, settings.message_retry_base_seconds) == (20, 30)


def test_environment_values_are_typed():
    settings = load_settings(environ={"IDP_SMTP_PORT": "465", "IDP_SMTP_SECURITY": "ssl",
                                      "IDP_MESSAGE_MAX_ATTEMPTS": "5"})
    assert (settings.smtp_port, settings.smtp_security, settings.message_max_attempts) == (
        465, "ssl", 5)


@pytest.mark.parametrize(("environ", "message"), [
    ({"IDP_SMTP_SECURITY": "tls"}, "IDP_SMTP_SECURITY"),
    ({"IDP_SMTP_PORT": "0"}, "IDP_SMTP_PORT"),
    ({"IDP_SMTP_PORT": "smtp"}, "IDP_SMTP_PORT"),
    ({"IDP_SMTP_HOST": "relay.example.org:587"}, "IDP_SMTP_HOST"),
    ({"IDP_SMTP_HOST": "smtp://relay.example.org"}, "IDP_SMTP_HOST"),
    ({"IDP_SMTP_PASSWORD": "secret"}, "IDP_SMTP_USERNAME"),
    ({"IDP_MAIL_FROM": "no-reply"}, "IDP_MAIL_FROM"),
    ({"IDP_SMS_SENDER": "MALAKOFF HUMANIS"}, "IDP_SMS_SENDER"),
    ({"IDP_SMS_GATEWAY_URL": "sms.example.org"}, "IDP_SMS_GATEWAY_URL"),
    ({"IDP_MESSAGE_MAX_ATTEMPTS": "0"}, "IDP_MESSAGE_MAX_ATTEMPTS"),
    ({"IDP_MESSAGE_RETRY_BASE_SECONDS": "-1"}, "IDP_MESSAGE_RETRY_BASE_SECONDS"),
    ({"IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_HOST": ""}, "IDP_SMTP_HOST"),
    ({"IDP_SMS_BACKEND": "http"}, "IDP_SMS_GATEWAY_URL"),
    ({**PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_HOST": "", }, "IDP_SMTP_HOST"),
    ({**PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_SECURITY": "none",
      "IDP_SMTP_USERNAME": "u", "IDP_SMTP_PASSWORD": "p"}, "IDP_SMTP_SECURITY"),
    ({**PRODUCTION, "IDP_SMS_BACKEND": "http", "IDP_SMS_GATEWAY_URL": "http://sms.example.org"},
     "https"),
    ({"IDP_LETTER_BACKEND": "post"}, "IDP_LETTER_BACKEND must be 'outbox' or 'http'"),
    ({"IDP_LETTER_BACKEND": "http"}, "IDP_LETTER_BACKEND=http needs IDP_LETTER_GATEWAY_URL"),
    ({"IDP_LETTER_GATEWAY_URL": "print.example.org/v1"}, "IDP_LETTER_GATEWAY_URL must be an http"),
    ({"IDP_LETTER_GATEWAY_TIMEOUT_SECONDS": "0"}, "IDP_LETTER_GATEWAY_TIMEOUT_SECONDS"),
    ({"IDP_LETTER_GATEWAY_TIMEOUT_SECONDS": "121"}, "IDP_LETTER_GATEWAY_TIMEOUT_SECONDS"),
    ({"IDP_LETTER_GATEWAY_TIMEOUT_SECONDS": "ten"}, "IDP_LETTER_GATEWAY_TIMEOUT_SECONDS"),
    ({**PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMS_BACKEND": "http",
      "IDP_SMS_GATEWAY_URL": "https://sms.example.org/v1/sms", "IDP_LETTER_BACKEND": "http",
      "IDP_LETTER_GATEWAY_URL": "http://print.example.org/v1/letters"},
     "IDP_LETTER_GATEWAY_URL must be an https:// URL in production"),
])
def test_bad_values_are_refused(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


@pytest.mark.parametrize("sender", ["MALAKOFF", "Miel", "M1EL2026", "+33612345678"])
def test_sms_senders_accepted(sender):
    assert load_settings(environ={"IDP_SMS_SENDER": sender}).sms_sender == sender


def test_production_with_real_channels_starts():
    settings = load_settings(environ={
        **PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_HOST": "mailcatcher",
        "IDP_SMTP_PORT": "1025", "IDP_SMTP_SECURITY": "none", "IDP_SMS_BACKEND": "http",
        "IDP_SMS_GATEWAY_URL": "https://sms.example.org/v1/sms", "IDP_SMS_GATEWAY_TOKEN": "t",
    })
    assert settings.mail_backend == "smtp"
    assert settings.sms_backend == "http"


def test_delivery_and_timeout_defaults():
    settings = load_settings(environ={})
    assert (settings.message_delivery, settings.message_sent_wait_ms) == ("worker", 1000)
    assert (settings.smtp_timeout_seconds, settings.sms_gateway_timeout_seconds) == (10, 10)


@pytest.mark.parametrize(("environ", "message"), [
    ({"IDP_MESSAGE_DELIVERY": "now"}, "IDP_MESSAGE_DELIVERY"),
    ({"IDP_MESSAGE_SENT_WAIT_MS": "-1"}, "IDP_MESSAGE_SENT_WAIT_MS"),
    ({"IDP_MESSAGE_SENT_WAIT_MS": "5001"}, "IDP_MESSAGE_SENT_WAIT_MS"),
    ({"IDP_SMTP_TIMEOUT_SECONDS": "0"}, "IDP_SMTP_TIMEOUT_SECONDS"),
    ({"IDP_SMS_GATEWAY_TIMEOUT_SECONDS": "121"}, "IDP_SMS_GATEWAY_TIMEOUT_SECONDS"),
])
def test_bad_delivery_values_are_refused(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_production_never_delivers_inside_a_request():
    real = {**PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMTP_HOST": "relay.example.org",
            "IDP_SMS_BACKEND": "http", "IDP_SMS_GATEWAY_URL": "https://sms.example.org/v1"}
    assert load_settings(environ=real).message_delivery == "worker"
    with pytest.raises(ConfigError, match="IDP_MESSAGE_DELIVERY=inline"):
        load_settings(environ={**real, "IDP_MESSAGE_DELIVERY": "inline"})


def test_letter_defaults():
    settings = load_settings(environ={})
    assert (settings.letter_backend, settings.letter_gateway_url, settings.letter_gateway_token,
            settings.letter_gateway_timeout_seconds) == ("outbox", "", "", 10)


def test_production_with_a_letter_provider_starts():
    settings = load_settings(environ={
        **PRODUCTION, "IDP_MAIL_BACKEND": "smtp", "IDP_SMS_BACKEND": "http",
        "IDP_SMS_GATEWAY_URL": "https://sms.example.org/v1/sms", "IDP_LETTER_BACKEND": "http",
        "IDP_LETTER_GATEWAY_URL": "https://print.example.org/v1/letters",
        "IDP_LETTER_GATEWAY_TOKEN": "t", "IDP_LETTER_GATEWAY_TIMEOUT_SECONDS": "30",
    })
    assert (settings.letter_backend, settings.letter_gateway_timeout_seconds) == ("http", 30)

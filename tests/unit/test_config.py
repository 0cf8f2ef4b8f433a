"""Settings: defaults, environment overrides, and refusal of unsafe values at start-up."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from idp import create_app
from idp.cli import main
from idp.config import DEFAULT_SECRET_KEY, ConfigError, load_settings
from idp.tenancy import MigrationPolicy, load_tenants

ROOT = Path(__file__).resolve().parents[2]
STRONG = "x" * 40


def test_defaults_are_a_working_development_setup():
    settings = load_settings(environ={})
    assert settings.env == "development"
    assert settings.secret_key == DEFAULT_SECRET_KEY
    assert (settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism) == (
        2, 19456, 1)


def test_environment_overrides_are_typed():
    settings = load_settings(environ={"IDP_ACCESS_TOKEN_TTL": "120", "IDP_COOKIE_SECURE": "false"})
    assert settings.access_token_ttl == 120
    assert settings.cookie_secure is False


@pytest.mark.parametrize(("environ", "message"), [
    ({"IDP_ENV": "production"}, "IDP_SECRET_KEY"),
    ({"IDP_ENV": "production", "IDP_SECRET_KEY": "short"}, "IDP_SECRET_KEY"),
    ({"IDP_ENV": "production", "IDP_SECRET_KEY": STRONG}, "https"),
    ({"IDP_ENV": "production", "IDP_SECRET_KEY": STRONG, "IDP_BASE_URL": "https://id.example.org",
      "IDP_OUTBOX_PAGE": "1"}, "OUTBOX"),
    ({"IDP_ENV": "staging"}, "IDP_ENV"),
    ({"IDP_ACCESS_TOKEN_TTL": "ten"}, "IDP_ACCESS_TOKEN_TTL"),
    ({"IDP_ACCESS_TOKEN_TTL": "0"}, "IDP_ACCESS_TOKEN_TTL"),
    ({"IDP_COOKIE_SECURE": "maybe"}, "IDP_COOKIE_SECURE"),
    ({"IDP_BASE_URL": "localhost:5000"}, "IDP_BASE_URL"),
    ({"IDP_BASE_URL": "http://localhost:5000/"}, "IDP_BASE_URL"),
    ({"IDP_MAIL_BACKEND": "pigeon"}, "IDP_MAIL_BACKEND"),
    ({"IDP_CONFIG_FILE": "/nonexistent.toml"}, "IDP_CONFIG_FILE"),
    ({"IDP_DATABASE_URL": "postgresql+asyncpg://idp@db/idp"}, "IDP_DATABASE_URL names a database"),
    ({"IDP_DATABASE_URL": "postgresql+psycopg://idp@db:port/idp"}, "IDP_DATABASE_URL is not a database URL"),
    ({"IDP_DATABASE_URL": "sqlite://idp@db/idp.sqlite3"}, "a SQLite URL names a file"),
    ({"IDP_REFRESH_TOKEN_TTL": str(2**31)}, "IDP_REFRESH_TOKEN_TTL must be at most 2147483647"),
    ({"IDP_MESSAGE_RETRY_BASE_SECONDS": "3601"}, "IDP_MESSAGE_RETRY_BASE_SECONDS must be at most 3600"),
    ({"IDP_BACKCHANNEL_LOGOUT_RETRY_BASE_SECONDS": "86400"},
     "IDP_BACKCHANNEL_LOGOUT_RETRY_BASE_SECONDS must be at most 3600"),
])
def test_bad_values_are_refused_with_the_setting_named(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


PRODUCTION_READY = {
    "IDP_ENV": "production", "IDP_SECRET_KEY": STRONG, "IDP_BASE_URL": "https://id.example.org",
    "IDP_MAIL_BACKEND": "smtp", "IDP_SMS_BACKEND": "http",
    "IDP_SMS_GATEWAY_URL": "https://sms.example.org/v1", "IDP_METRICS_TOKEN": "m" * 32,
    "IDP_LETTER_BACKEND": "http", "IDP_LETTER_GATEWAY_URL": "https://letters.example.org/v1"}


def test_production_with_a_strong_key_https_real_channels_and_a_metrics_token_starts():
    assert load_settings(environ=PRODUCTION_READY).is_production


@pytest.mark.parametrize("token", ["", "short-token"])
def test_production_needs_a_metrics_token(token):
    with pytest.raises(ConfigError, match="IDP_METRICS_TOKEN"):
        load_settings(environ={**PRODUCTION_READY, "IDP_METRICS_TOKEN": token})


def test_production_refuses_the_outbox_channels():
    with pytest.raises(ConfigError, match="real channels"):
        load_settings(environ={"IDP_ENV": "production", "IDP_SECRET_KEY": STRONG,
                               "IDP_BASE_URL": "https://id.example.org"})


def test_config_file_values_and_unknown_keys(tmp_path):
    good = tmp_path / "idp.toml"
    good.write_text('access_token_ttl = 300\nredis_url = "redis://cache:6379/0"\n')
    settings = load_settings(environ={"IDP_CONFIG_FILE": str(good)})
    assert settings.access_token_ttl == 300 and settings.redis_url == "redis://cache:6379/0"
    bad = tmp_path / "bad.toml"
    bad.write_text("acces_token_ttl = 300\n")
    with pytest.raises(ConfigError, match="unknown setting 'acces_token_ttl'"):
        load_settings(environ={"IDP_CONFIG_FILE": str(bad)})


@pytest.mark.parametrize(("text", "message"), [
    (b"access_token_ttl = 1.5\n", "IDP_ACCESS_TOKEN_TTL must be a whole number, not 1.5"),
    (b"access_token_ttl = true\n", "IDP_ACCESS_TOKEN_TTL must be a whole number, not True"),
    (b"access_token_ttl = 99999999999999999999\n", "IDP_ACCESS_TOKEN_TTL must be at most"),
    (b"extra = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"# " + b"x" * 1024 * 1024 + b"\n", "larger than 1 MiB"),
    (b"\x7fELF\x02\x01\x01\x00\xff\xfe", "not UTF-8 text"),
], ids=["float", "boolean", "twenty digits", "nested", "huge", "binary"])
def test_a_config_file_value_or_file_that_cannot_be_read_is_named(tmp_path, text, message):
    path = tmp_path / "idp.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"IDP_CONFIG_FILE": str(path)})


def test_shipped_tenants_load():
    tenants = load_tenants(ROOT / "config" / "tenants", "https://id.example.org")
    assert set(tenants) == {"malakoff", "miel"}
    assert tenants["malakoff"].issuer == "https://id.example.org/malakoff"
    assert tenants["malakoff"].login_identifier == "email"
    assert tenants["miel"].login_identifier == "member_number"
    assert tenants["malakoff"].links.activation_ttl_hours == 72
    assert tenants["malakoff"].mfa.otp_ttl_seconds == 180
    assert tenants["malakoff"].migration == MigrationPolicy(date(2026, 10, 1), date(2027, 6, 30))
    assert tenants["miel"].migration.phase() == "none"


def tenants_with_accessibility_email(directory: Path, email: str) -> Path:
    """A copy of the shipped tenants whose statements name ``email``."""
    directory.mkdir()
    for shipped in (ROOT / "config" / "tenants").glob("*.toml"):
        text = re.sub(r'(?m)^email = ".*"$', f'email = "{email}"', shipped.read_text(encoding="utf-8"))
        (directory / shipped.name).write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("email", [
    "", "accessibilite@malakoff.example.org", "a11y@example.com", "a11y@EXAMPLE.NET",
    "a11y@mutuelle.example", "a11y@mutuelle.test", "a11y@mutuelle.invalid", "a11y@localhost",
    "no-at-sign.fr",
])
def test_production_refuses_to_start_without_a_real_accessibility_contact(tmp_path, email):
    tenants = tenants_with_accessibility_email(tmp_path / "tenants", email)
    overrides = {key.removeprefix("IDP_").lower(): value for key, value in PRODUCTION_READY.items()}
    with pytest.raises(ConfigError, match=r"malakoff\.toml: \[accessibility\] email must be the brand"):
        create_app({**overrides, "tenants_dir": str(tenants), "keys_dir": str(tmp_path / "keys")})


def test_production_starts_with_a_real_looking_accessibility_contact(tmp_path):
    tenants = tenants_with_accessibility_email(tmp_path / "tenants", "accessibilite@mutuelle-ouest.fr")
    overrides = {key.removeprefix("IDP_").lower(): value for key, value in PRODUCTION_READY.items()}
    app = create_app({**overrides, "tenants_dir": str(tenants), "keys_dir": str(tmp_path / "keys")})
    assert app.extensions["idp"].tenants["miel"].accessibility.email == "accessibilite@mutuelle-ouest.fr"
    # Development and the demo keep the shipped placeholders.
    shipped = load_tenants(ROOT / "config" / "tenants", "http://localhost:5000")
    assert shipped["malakoff"].accessibility.email == "accessibilite@malakoff.example.org"


@pytest.mark.parametrize(("today", "phase"), [
    (date(2026, 9, 30), "before"), (date(2026, 10, 1), "open"), (date(2027, 6, 29), "open"),
    (date(2027, 6, 30), "closed"), (date(2030, 1, 1), "closed"),
])
def test_the_migration_phase_turns_on_its_dates(today, phase):
    assert MigrationPolicy(date(2026, 10, 1), date(2027, 6, 30)).phase(today) == phase
    assert MigrationPolicy(date(2026, 10, 1)).phase(date(2040, 1, 1)) == "open"


HEAD_EMAIL = ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\n'
              'terms_version = "1"\n')


def test_passkeys_default_to_the_base_url_and_may_name_subdomains(tmp_path):
    (tmp_path / "acme.toml").write_text(HEAD_EMAIL)
    default = load_tenants(tmp_path, "https://id.example.org:8443")["acme"].passkeys
    assert default.rp_id == "id.example.org" and default.origins == ("https://id.example.org:8443",)
    (tmp_path / "acme.toml").write_text(
        HEAD_EMAIL + '[passkeys]\nrp_id = "example.org"\norigins = ["https://id.example.org", '
        '"https://Example.org/"]')
    passkeys = load_tenants(tmp_path, "https://id.example.org")["acme"].passkeys
    assert passkeys.rp_id == "example.org"
    assert passkeys.origins == ("https://id.example.org", "https://example.org")
    (tmp_path / "acme.toml").write_text(HEAD_EMAIL)
    local = load_tenants(tmp_path, "http://localhost:5000")["acme"].passkeys
    assert local.rp_id == "localhost" and local.origins == ("http://localhost:5000",)


@pytest.mark.parametrize(("text", "message"), [
    ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "phone"\nterms_version = "1"',
     "login_identifier"),
    ('slug = "other"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\nterms_version = "1"',
     "match the file name"),
    ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\nterms_version = "1"\n'
     "[password]\nmax_length = 20", "max_length"),
    ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\nterms_version = "1"\n'
     "[mfa]\notp_ttl_seconds = -3", "whole number from 1 to 3600"),
    # Lifetimes that would overflow the dates they are added to, or mean nothing.
    (HEAD_EMAIL + "[mfa]\ntrusted_device_days = 1000000000000",
     "trusted_device_days must be a whole number from 1 to 400"),
    (HEAD_EMAIL + "[mfa]\notp_max_attempts = 1000", "otp_max_attempts must be a whole number from 1 to 10"),
    (HEAD_EMAIL + "[links]\nactivation_ttl_hours = 99999999999999999999", "from 1 to 720"),
    (HEAD_EMAIL + "[registration]\nletter_code_days = 0",
     "letter_code_days must be a whole number from 1 to 365"),
    (HEAD_EMAIL + "[mfa]\notp_ttl_seconds = 1.5", "otp_ttl_seconds must be a whole number"),
    (HEAD_EMAIL + "[mfa]\notp_ttl_seconds = true", "otp_ttl_seconds must be a whole number"),
    (HEAD_EMAIL + "[sms]\nbudget_per_hour = 10000000",
     "budget_per_hour must be a whole number from 1 to 1000000"),
    ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\nterms_version = "1"\n'
     'primary_color = "blue"', "colour"),
    ('slug = "acme"', "missing"),
    ("not toml [", "acme.toml"),
    (HEAD_EMAIL + '[migration]\nstarts_on = "2026-10-01"', "must be a date"),
    (HEAD_EMAIL + "[migration]\nstarts_on = 2026-10-01T10:00:00", "must be a date"),
    (HEAD_EMAIL + "[migration]\nstart = 2026-10-01", "unknown keys in \\[migration\\]"),
    (HEAD_EMAIL + "[migration]\ncutoff_on = 2026-10-01", "cutoff_on needs starts_on"),
    (HEAD_EMAIL + "[migration]\nstarts_on = 2026-10-01\ncutoff_on = 2026-10-01", "after starts_on"),
    (HEAD_EMAIL.replace('"email"', '"member_number"') + "[migration]\nstarts_on = 2026-10-01",
     "only where members sign in with an email"),
    (HEAD_EMAIL + '[passkeys]\nrp_id = "Not A Domain"', "rp_id"),
    (HEAD_EMAIL + '[passkeys]\norigins = "https://id.example.org"', "list"),
    (HEAD_EMAIL + '[passkeys]\norigins = []', "list"),
    (HEAD_EMAIL + '[passkeys]\norigins = ["https://evil.example"]', "not on rp_id"),
    (HEAD_EMAIL + '[passkeys]\norigins = ["https://notexample.org"]\nrp_id = "example.org"', "not on rp_id"),
    (HEAD_EMAIL + '[passkeys]\norigins = ["http://id.example.org"]', "https"),
    (HEAD_EMAIL + '[passkeys]\norigins = ["https://id.example.org/login"]', "https://host"),
    (HEAD_EMAIL + '[passkeys]\norigins = ["https://id.example.org:99999"]', "https://host"),
    (HEAD_EMAIL + '[passkeys]\nrp = "id.example.org"', "unknown keys"),
])
def test_bad_tenant_files_are_refused(tmp_path, text, message):
    (tmp_path / "acme.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_tenants(tmp_path, "https://id.example.org")


def test_the_cli_reports_configuration_errors_cleanly(monkeypatch):
    monkeypatch.setenv("IDP_ENV", "production")
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code != 0
    assert "IDP_SECRET_KEY" in result.output
    assert "Traceback" not in result.output


def test_production_refuses_codes_by_post_that_nobody_would_post(tmp_path):
    """A tenant that posts activation codes needs the print-and-mail provider in production."""
    shutil.copytree(ROOT / "config" / "tenants", tmp_path, dirs_exist_ok=True)
    for path in tmp_path.glob("*.toml"):  # the shipped placeholders are refused for their own reason
        path.write_text(path.read_text(encoding="utf-8").replace(
            "example.org", "brand.fr"), encoding="utf-8")
    with pytest.raises(ConfigError, match='without_contact = "letter" needs IDP_LETTER_BACKEND=http'):
        load_tenants(tmp_path, "https://id.example.org", production=True)
    assert load_tenants(tmp_path, "https://id.example.org", production=True, posts_letters=True)
    for path in tmp_path.glob("*.toml"):
        path.write_text(path.read_text(encoding="utf-8").replace(
            'without_contact = "letter"', 'without_contact = "review"'), encoding="utf-8")
    assert load_tenants(tmp_path, "https://id.example.org", production=True)


@pytest.mark.parametrize(("url", "accepted"), [
    ("https://sms.example.org/v1", True),
    ("http://catcher:8026/sms", True),  # the trial catcher, on the stack's own network
    ("http://sms.example.org/v1", False),
    ("http://203.0.113.9/sms", False),
    ("http://[::1]:8026/sms", False),
])
def test_production_sends_sms_over_https_or_to_a_service_of_its_own_network(url, accepted):
    environ = {**PRODUCTION_READY, "IDP_SMS_GATEWAY_URL": url}
    if accepted:
        assert load_settings(environ=environ).sms_gateway_url == url
    else:
        with pytest.raises(ConfigError, match="IDP_SMS_GATEWAY_URL must be an https:// URL"):
            load_settings(environ=environ)

"""Every setting of the provider, with its default and what it is for.

Values come from, in increasing precedence: the defaults below, the optional
TOML file named by ``IDP_CONFIG_FILE``, the ``IDP_<NAME>`` environment
variables, and the ``overrides`` given to ``create_app`` (tests, the demo).
Everything is checked at start-up; a bad value stops the process with a
message naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - refused in production
SMTP_SECURITY = ("starttls", "ssl", "none")
# An alphanumeric SMS sender id (GSM: at most 11 characters) or an E.164 number.
SMS_SENDER_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]{0,10}|\+[1-9][0-9]{6,14})$")
# The databases the provider runs on, as SQLAlchemy names them (backend, driver).
DATABASE_KINDS = (("postgresql", "psycopg"), ("sqlite", "pysqlite"))
# Whole-number settings are counts, sizes and durations in seconds: none needs more than a
# 32-bit integer (68 years), and dates computed from a larger one can overflow.
MAX_WHOLE_NUMBER = 2**31 - 1
# A settings file is a few lines of TOML; reading is bounded (IDP_CONFIG_FILE=/dev/zero).
MAX_CONFIG_FILE_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or has a value the provider cannot run with."""


@dataclass(frozen=True)
class Settings:
    # "development" allows the default secret key and plain-HTTP issuers;
    # "production" refuses both.
    env: str = "development"
    # Signs sessions, CSRF tokens and links. At least 32 characters in production.
    secret_key: str = DEFAULT_SECRET_KEY
    # Public base URL; each tenant's issuer is <base_url>/<tenant> unless its
    # TOML file names another.
    base_url: str = "http://localhost:5000"
    # SQLAlchemy URL. PostgreSQL in production: postgresql+psycopg://user@host/db
    database_url: str = "sqlite:///var/idp.sqlite3"
    # Bounded waits on PostgreSQL, in seconds, so that a request answers 503
    # instead of hanging: to open a connection;
    database_connect_timeout: int = 3
    # for one statement (PostgreSQL cancels it; the client gives up on any
    # unanswered exchange one second later; 0: no bound);
    database_statement_timeout: int = 2
    # for a free connection of the pool (10 per process, plus 10 overflow);
    database_pool_timeout: int = 3
    # of silence on an idle connection before TCP keepalive probes start (3, 10 s apart);
    database_keepalives_idle: int = 30
    # for sent data to be acknowledged before the kernel drops the connection.
    database_tcp_user_timeout: int = 10
    # Seconds after it was received past which a request commits nothing and answers 503
    # (so do requests whose client closed the connection): held up by a dependency, it
    # would otherwise change state for a client that has given up. Above the waits on
    # PostgreSQL put together, below the server's time limit for a request (idp.web.server,
    # WEB_TIMEOUT) (1-60).
    request_deadline_seconds: int = 10
    # Redis for short-lived state (sessions, interactions, rate counters).
    # Empty: an in-process store, correct for a single process only (the demo).
    redis_url: str = ""
    # Where signing keys live (private keys 0600, never served).
    keys_dir: str = "keys"
    # Where the tenants' TOML files live.
    tenants_dir: str = "config/tenants"
    # Seconds a new key must have been published in the JWKS before it may sign
    # (covers relying parties' JWKS caches).
    key_prepublish_seconds: int = 300
    # Cache-Control max-age of discovery and JWKS responses.
    metadata_max_age: int = 300
    # Lifetimes, in seconds.
    authorization_code_ttl: int = 60
    access_token_ttl: int = 600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    interaction_ttl: int = 1800
    # A pushed authorization request's request_uri (RFC 9126 2.2: short-lived, one use).
    pushed_request_ttl: int = 60
    # The token, push, introspection and revocation endpoints authenticate clients
    # against a per-process copy read at most this many seconds ago (0: read
    # the database every time). A removed client can obtain nothing from the
    # moment of removal (its codes and tokens go with it) and stops
    # authenticating within this bound.
    client_cache_seconds: int = 10
    # Server-side session: ends after this much inactivity, and in any case
    # this long after sign-in.
    session_idle_timeout: int = 30 * 60
    session_absolute_timeout: int = 12 * 3600
    # Cookies are Secure and use the __Host- prefix. Only a plain-HTTP
    # development set-up on a non-localhost name needs this off.
    cookie_secure: bool = True
    # argon2id cost (OWASP minimum: m=19 MiB, t=2, p=1). Hashes made with
    # other parameters are upgraded at the next successful sign-in.
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19456
    argon2_parallelism: int = 1
    # Where emails and SMS go: "outbox" keeps them in the database for the
    # outbox page (demo); "smtp"/"http" are the real channels.
    mail_backend: str = "outbox"
    sms_backend: str = "outbox"
    # Where letters (activation codes by post) go: "outbox" keeps them for the outbox
    # page, which shows each one's PDF; "http" posts them to a print-and-mail provider.
    letter_backend: str = "outbox"
    # SMTP relay for mail_backend "smtp". smtp_security: "starttls" (upgrade on
    # the submission port, 587), "ssl" (TLS from the start, 465) or "none"
    # (plain, for a local mail catcher only). Login only when a username is set.
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"
    # The From header of every email.
    mail_from: str = "Espace membre <no-reply@example.org>"
    # SMS gateway for sms_backend "http": a JSON POST {"to", "from", "text"} with
    # "Authorization: Bearer <token>"; the sender is the name or number shown
    # on the member's phone (up to 11 letters and digits, or a number).
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    sms_sender: str = "MALAKOFF"
    # Print-and-mail provider for letter_backend "http": a JSON POST {"reference",
    # "address_lines", "pdf" (base64)} with "Authorization: Bearer <token>" and the
    # reference as Idempotency-Key.
    letter_gateway_url: str = ""
    letter_gateway_token: str = ""
    # Emails and SMS are queued and retried: after a failed attempt the next
    # one waits retry_base * 2^(attempts - 1) seconds, at most one hour; after
    # max_attempts the message is "failed" and listed by `idp outbox list`.
    message_max_attempts: int = 20
    message_retry_base_seconds: int = 30
    # Who delivers: "worker" (`idp outbox work`, woken when a message is committed;
    # a request never waits on SMTP or the gateway) or "inline" (the request that
    # queued a message also tries it once right after its commit, holding its web
    # worker meanwhile: tests and single-process development only, refused in production).
    message_delivery: str = "worker"
    # How long, in milliseconds after its commit, a page that sent a code waits for
    # the worker to report it sent before saying it is delayed (0-5000).
    message_sent_wait_ms: int = 1000
    # Seconds each exchange with the SMTP relay (connecting, then every command) may
    # take before the attempt fails and the message waits for its next try (1-120).
    smtp_timeout_seconds: int = 10
    # Seconds to connect to the SMS gateway, and again to wait for each part of its
    # answer, before the attempt fails and the message waits for its next try (1-120).
    sms_gateway_timeout_seconds: int = 10
    # The same for the print-and-mail provider (1-120; a PDF of a few kilobytes).
    letter_gateway_timeout_seconds: int = 10
    # Back-channel logout tokens (OIDC Back-Channel Logout 1.0): seconds to connect to a relying
    # party, and again to wait for its answer (1-30); tries before the token is "failed" (and
    # audited); the first retry's wait, doubled at each further one (at most an hour).
    backchannel_logout_timeout_seconds: int = 5
    backchannel_logout_max_attempts: int = 6
    backchannel_logout_retry_base_seconds: int = 10
    # A logout token is valid this long after it is signed (2 minutes).
    logout_token_ttl: int = 120
    # Show the outbox page (/_outbox). Never in production.
    outbox_page: bool = False
    # Trust X-Forwarded-* (and X-Request-ID) from this many proxies in front of the provider.
    trusted_proxies: int = 0
    # Bearer token Prometheus sends to /metrics. Empty: /metrics is open
    # (development only; production requires a token).
    metrics_token: str = ""
    # Extra values, kept for the modules that read them.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def validate(self) -> Settings:
        if self.env not in ("development", "production"):
            raise ConfigError(f"IDP_ENV must be 'development' or 'production', not {self.env!r}")
        if self.is_production:
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                raise ConfigError(
                    "IDP_SECRET_KEY must be set to a random value of at least 32 characters "
                    "in production (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            if not self.base_url.startswith("https://"):
                raise ConfigError("IDP_BASE_URL must be an https:// URL in production")
            if self.outbox_page:
                raise ConfigError("IDP_OUTBOX_PAGE cannot be enabled in production")
        if not self.base_url.startswith(("http://", "https://")) or self.base_url.endswith("/"):
            raise ConfigError("IDP_BASE_URL must be an http(s) URL without a trailing slash")
        self._validate_database_url()
        for name in (
            "authorization_code_ttl", "access_token_ttl", "id_token_ttl", "refresh_token_ttl",
            "interaction_ttl", "pushed_request_ttl", "session_idle_timeout", "session_absolute_timeout",
            "argon2_time_cost", "argon2_memory_cost", "argon2_parallelism", "metadata_max_age",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"IDP_{name.upper()} must be a positive number")
        for name in ("database_connect_timeout", "database_pool_timeout",
                     "database_keepalives_idle", "database_tcp_user_timeout"):
            if not 1 <= getattr(self, name) <= 600:
                raise ConfigError(f"IDP_{name.upper()} must be between 1 and 600 seconds")
        if not 1 <= self.request_deadline_seconds <= 60:
            raise ConfigError("IDP_REQUEST_DEADLINE_SECONDS must be between 1 and 60 seconds")
        if not 0 <= self.database_statement_timeout <= 3600:
            raise ConfigError("IDP_DATABASE_STATEMENT_TIMEOUT must be between 0 (no bound) and "
                              "3600 seconds")
        for name in ("key_prepublish_seconds", "trusted_proxies", "client_cache_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"IDP_{name.upper()} cannot be negative")
        if self.argon2_memory_cost < 8 * self.argon2_parallelism:
            raise ConfigError("IDP_ARGON2_MEMORY_COST must be at least 8 KiB per lane")
        if self.mail_backend not in ("outbox", "smtp"):
            raise ConfigError("IDP_MAIL_BACKEND must be 'outbox' or 'smtp'")
        if self.sms_backend not in ("outbox", "http"):
            raise ConfigError("IDP_SMS_BACKEND must be 'outbox' or 'http'")
        if self.letter_backend not in ("outbox", "http"):
            raise ConfigError("IDP_LETTER_BACKEND must be 'outbox' or 'http'")
        self._validate_channels()
        if self.is_production and len(self.metrics_token) < 32:
            raise ConfigError(
                "IDP_METRICS_TOKEN must be set to a random value of at least 32 characters "
                "in production: Prometheus sends it as a bearer token to /metrics"
            )
        return self

    def _validate_database_url(self) -> None:
        # The URL itself is never repeated: it may hold a password.
        supported = ("PostgreSQL through psycopg (postgresql+psycopg://user@host/db) or SQLite "
                     "(sqlite:///var/idp.sqlite3)")
        try:
            url = make_url(self.database_url)
            kind = (url.get_backend_name(), url.get_driver_name())
        except (ArgumentError, ValueError):
            raise ConfigError(f"IDP_DATABASE_URL is not a database URL: use {supported}") from None
        if kind not in DATABASE_KINDS:
            raise ConfigError(f"IDP_DATABASE_URL names a database the provider does not run on "
                              f"({url.drivername}): use {supported}")
        if kind[0] == "sqlite" and (url.username or url.password or url.host or url.port):
            raise ConfigError("IDP_DATABASE_URL: a SQLite URL names a file, with no user or host "
                              "(sqlite:///relative/path or sqlite:////absolute/path)")

    def _validate_channels(self) -> None:
        if self.smtp_security not in SMTP_SECURITY:
            raise ConfigError("IDP_SMTP_SECURITY must be 'starttls', 'ssl' or 'none'")
        if not 0 < self.smtp_port < 65536:
            raise ConfigError("IDP_SMTP_PORT must be a port number (1-65535)")
        # One colon is "host:port"; IPv6 addresses have several.
        if any(char in self.smtp_host for char in " /@") or self.smtp_host.count(":") == 1:
            raise ConfigError(
                "IDP_SMTP_HOST must be a host name or address, without port or scheme"
            )
        if self.smtp_password and not self.smtp_username:
            raise ConfigError("IDP_SMTP_PASSWORD is set but IDP_SMTP_USERNAME is empty")
        _name, address = parseaddr(self.mail_from)
        if "@" not in address or any(char in self.mail_from for char in "\r\n"):
            raise ConfigError(
                "IDP_MAIL_FROM must be an address, e.g. 'Espace membre <no-reply@example.org>'"
            )
        if not SMS_SENDER_RE.match(self.sms_sender):
            raise ConfigError(
                "IDP_SMS_SENDER must be up to 11 letters and digits (starting with a letter) "
                "or a phone number in international format (+33…)"
            )
        if self.sms_gateway_url and not self.sms_gateway_url.startswith(("http://", "https://")):
            raise ConfigError("IDP_SMS_GATEWAY_URL must be an http(s) URL")
        if self.letter_gateway_url and not self.letter_gateway_url.startswith(("http://", "https://")):
            raise ConfigError("IDP_LETTER_GATEWAY_URL must be an http(s) URL")
        if self.message_max_attempts <= 0 or self.message_retry_base_seconds <= 0:
            raise ConfigError(
                "IDP_MESSAGE_MAX_ATTEMPTS and IDP_MESSAGE_RETRY_BASE_SECONDS must be positive"
            )
        # The waits between tries double from the base up to an hour: a longer base means nothing.
        for name in ("message_retry_base_seconds", "backchannel_logout_retry_base_seconds"):
            if getattr(self, name) > 3600:
                raise ConfigError(f"IDP_{name.upper()} must be at most 3600 seconds (the "
                                  "longest wait between two tries)")
        if self.message_delivery not in ("worker", "inline"):
            raise ConfigError("IDP_MESSAGE_DELIVERY must be 'worker' or 'inline'")
        if not 0 <= self.message_sent_wait_ms <= 5000:
            raise ConfigError("IDP_MESSAGE_SENT_WAIT_MS must be between 0 and 5000")
        if not 1 <= self.backchannel_logout_timeout_seconds <= 30:
            raise ConfigError("IDP_BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS must be between 1 and 30")
        if self.backchannel_logout_max_attempts <= 0 or self.backchannel_logout_retry_base_seconds <= 0:
            raise ConfigError("IDP_BACKCHANNEL_LOGOUT_MAX_ATTEMPTS and "
                              "IDP_BACKCHANNEL_LOGOUT_RETRY_BASE_SECONDS must be positive")
        if not 30 <= self.logout_token_ttl <= 600:
            raise ConfigError("IDP_LOGOUT_TOKEN_TTL must be between 30 and 600 seconds")
        for name in ("smtp_timeout_seconds", "sms_gateway_timeout_seconds",
                     "letter_gateway_timeout_seconds"):
            if not 1 <= getattr(self, name) <= 120:
                raise ConfigError(f"IDP_{name.upper()} must be between 1 and 120 seconds")
        if self.mail_backend == "smtp" and not self.smtp_host:
            raise ConfigError("IDP_MAIL_BACKEND=smtp needs IDP_SMTP_HOST")
        if self.sms_backend == "http" and not self.sms_gateway_url:
            raise ConfigError("IDP_SMS_BACKEND=http needs IDP_SMS_GATEWAY_URL")
        if self.letter_backend == "http" and not self.letter_gateway_url:
            raise ConfigError("IDP_LETTER_BACKEND=http needs IDP_LETTER_GATEWAY_URL")
        if self.is_production:
            if self.mail_backend == "smtp" and self.smtp_username and self.smtp_security == "none":
                raise ConfigError(
                    "IDP_SMTP_SECURITY=none would send the SMTP password in clear: "
                    "use starttls or ssl in production"
                )
            if self.sms_backend == "http" and not _https_or_private_network(self.sms_gateway_url):
                raise ConfigError(
                    "IDP_SMS_GATEWAY_URL must be an https:// URL in production (http:// only to a "
                    "service of the stack's own network, named without a dot, such as the trial "
                    "SMS catcher: http://catcher:8026/sms)")
            if self.letter_backend == "http" and not _https_or_private_network(self.letter_gateway_url):
                raise ConfigError(
                    "IDP_LETTER_GATEWAY_URL must be an https:// URL in production (http:// only to "
                    "a service of the stack's own network, named without a dot, such as the trial "
                    "catcher: http://catcher:8026/letter)")
            if self.message_delivery != "worker":
                raise ConfigError(
                    "IDP_MESSAGE_DELIVERY=inline would hold a web worker on every SMTP or "
                    "gateway exchange: production delivers through `idp outbox work`"
                )
            # The outbox keeps messages for the demo page: in production nobody would receive them.
            if self.mail_backend != "smtp" or self.sms_backend != "http":
                raise ConfigError(
                    "production needs real channels: IDP_MAIL_BACKEND=smtp and IDP_SMS_BACKEND=http"
                )


def _coerce(name: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"IDP_{name.upper()} must be true or false, not {raw!r}")
    if isinstance(default, int):
        return _whole_number(name, raw)
    if isinstance(default, dict):
        if not isinstance(raw, dict):
            raise ConfigError(f"{name} must be a table")
        return raw
    return str(raw)


def _whole_number(name: str, raw: Any) -> int:
    """An integer setting: a TOML integer or the digits of a variable (not true, not 1.5, which
    int() would read as 1), at most ``MAX_WHOLE_NUMBER``; ``validate`` checks each one's range."""
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValueError
        number = int(raw)
    except ValueError:
        raise ConfigError(f"IDP_{name.upper()} must be a whole number, not {raw!r}") from None
    if number > MAX_WHOLE_NUMBER:
        raise ConfigError(f"IDP_{name.upper()} must be at most {MAX_WHOLE_NUMBER}, not {raw!r}")
    return number


def _read_config_file(path: str) -> dict[str, Any]:
    """The settings of the TOML file ``path`` (``IDP_CONFIG_FILE``)."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"IDP_CONFIG_FILE {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"IDP_CONFIG_FILE {path}: larger than 1 MiB, not a settings file")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"IDP_CONFIG_FILE {path}: not UTF-8 text, not a TOML settings "
                          "file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"IDP_CONFIG_FILE {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"IDP_CONFIG_FILE {path}: nested too deeply to be read") from None


def load_settings(overrides: dict[str, Any] | None = None, environ=None) -> Settings:
    """Build and validate the settings (see the module docstring for precedence)."""
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings)}
    defaults = Settings()
    values: dict[str, Any] = {}

    config_file = environ.get("IDP_CONFIG_FILE")
    if config_file:
        for key, raw in _read_config_file(config_file).items():
            if key not in known:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, getattr(defaults, key))

    for key in known:
        env_name = f"IDP_{key.upper()}"
        if key != "extra" and env_name in environ:
            values[key] = _coerce(key, environ[env_name], getattr(defaults, key))

    for key, raw in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(key, raw, getattr(defaults, key))

    return dataclasses.replace(defaults, **values).validate()


def _https_or_private_network(url: str) -> bool:
    """https, or plain http to a host named without a dot: a service of the compose network
    (the trial catcher), which the traffic never leaves."""
    if url.startswith("https://"):
        return True
    host = urlsplit(url).hostname or ""
    return url.startswith("http://") and bool(host) and "." not in host and ":" not in host

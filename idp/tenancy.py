"""Tenants: each brand is its own issuer, loaded from config/tenants/<slug>.toml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from idp.config import ConfigError, Settings

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# The languages of the pages, emails and SMS (French first).
LOCALES = ("fr", "en")
LOGIN_IDENTIFIERS = ("email", "member_number")
# Domains reserved for documentation and tests (RFC 2606, RFC 6761): no brand's mailbox is there.
RESERVED_DOMAINS = ("example.org", "example.com", "example.net", "example", "test", "invalid",
                    "localhost")


def _at_most(default: int, most: int) -> Any:
    """A whole number's default and the most a tenant file may set it to: past a sane bound a
    lifetime would overflow the dates it is added to, or a count mean nothing."""
    return field(default=default, metadata={"most": most})


@dataclass(frozen=True)
class LinkPolicy:
    activation_ttl_hours: int = _at_most(72, 30 * 24)
    reset_ttl_minutes: int = _at_most(30, 24 * 60)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = _at_most(8, 128)
    max_length: int = _at_most(128, 1024)
    # Characters that count as "special"; empty means any non-alphanumeric one.
    specials: str = "!@#*$%"


# What registration does for a member whose record holds neither an email nor a mobile: card
# data alone (member number, names, birth date) is printed on cards and letters, so it never
# activates an account by itself.
WITHOUT_CONTACT = ("letter", "review")


@dataclass(frozen=True)
class RegistrationPolicy:
    # "letter": an activation code goes by post to the registry's postal address (review when
    # there is none); "review": support checks every such request.
    without_contact: str = "letter"
    # How long the code of a letter stays valid.
    letter_code_days: int = _at_most(30, 365)


@dataclass(frozen=True)
class MfaPolicy:
    otp_ttl_seconds: int = _at_most(180, 3600)
    # A six-digit code: each try is a chance in a million.
    otp_max_attempts: int = _at_most(5, 10)
    otp_resend_cooldown_seconds: int = _at_most(30, 3600)
    # Browsers keep a cookie 400 days at most.
    trusted_device_days: int = _at_most(90, 400)


# France and its overseas departments and territories, by ITU region code: +33, +262 (La
# Réunion, Mayotte), +590 (Guadeloupe, Saint-Barthélemy, Saint-Martin), +594, +596, +508,
# +681, +687, +689. Regions, not calling codes: +269 is the Comoros, not Mayotte.
FRANCE_AND_OVERSEAS = ("FR", "RE", "YT", "GP", "GF", "MQ", "PM", "WF", "NC", "PF", "BL", "MF")


@dataclass(frozen=True)
class SmsPolicy:
    """Where and how many SMS a tenant sends: every SMS costs money, and an open form that
    sends one to any number is a way to spend it (SMS pumping)."""

    # Region codes (ISO 3166 as phonenumbers knows them) whose mobiles may receive an SMS.
    countries: tuple[str, ...] = FRANCE_AND_OVERSEAS
    # Every SMS of the tenant in a rolling hour, whoever asked; past it, none until it lifts.
    budget_per_hour: int = _at_most(500, 1_000_000)

    def allows(self, e164: str) -> bool:
        """Whether an SMS may go to this number (E.164): it belongs to an allowed region."""
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return False
        return any(phonenumbers.is_valid_number_for_region(number, region)
                   for region in self.countries)


def _sms(data: dict[str, Any], source: str) -> SmsPolicy:
    raw = data.pop("sms", {})
    unknown = set(raw) - set(SmsPolicy.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{source}: unknown keys in [sms]: {', '.join(sorted(unknown))}")
    countries = raw.get("countries", list(FRANCE_AND_OVERSEAS))
    if (not isinstance(countries, list) or not countries
            or not all(isinstance(c, str) and c in phonenumbers.SUPPORTED_REGIONS for c in countries)):
        raise ConfigError(f"{source}: [sms] countries must be a list of region codes, like "
                          f'["FR", "RE"]')
    budget = raw.get("budget_per_hour", SmsPolicy.budget_per_hour)
    _check_whole(SmsPolicy, "sms", "budget_per_hour", budget, source)
    return SmsPolicy(countries=tuple(countries), budget_per_hour=budget)


# Migration dates are calendar days in France, where the members are.
MIGRATION_TIMEZONE = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class MigrationPolicy:
    """The move of the login identifier from member number to email (SPEC §7).

    Before ``starts_on`` legacy accounts sign in with their member number as before;
    from it, such a sign-in leads to "update my login identifier"; from ``cutoff_on``
    member-number sign-ins are refused with a way to recover the identifier.
    """

    starts_on: date | None = None
    cutoff_on: date | None = None

    def phase(self, today: date | None = None) -> str:
        """Where the migration stands today: "none" (none planned), "before", "open" or "closed"."""
        today = today or datetime.now(MIGRATION_TIMEZONE).date()
        if self.starts_on is None:
            return "none"
        if today < self.starts_on:
            return "before"
        if self.cutoff_on is not None and today >= self.cutoff_on:
            return "closed"
        return "open"


@dataclass(frozen=True)
class AccessibilityContact:
    """Who answers the accessibility statement (/<tenant>/accessibilite) and when it was written."""

    email: str = ""
    # A contact form, when the brand has one; shown beside the email.
    url: str = ""
    # YYYY-MM-DD: the day the statement was written (RGAA asks for it).
    statement_date: str = ""


@dataclass(frozen=True)
class SupportContact:
    """How members reach the brand's advisers: shown on every page that may leave them stuck,
    and at the foot of every email, so no "contact us" goes without saying how."""

    # As members dial it (spaces allowed).
    phone: str = ""
    # The hours it answers, in each language of the pages: (("fr", "du lundi…"), ("en", "Monday…")).
    hours: tuple[tuple[str, str], ...] = ()
    email: str = ""
    # Lines of the postal address, the last one the postcode and town.
    postal_address: tuple[str, ...] = ()

    @property
    def phone_shown(self) -> str:
        """The phone as pages and emails show it: its groups joined by no-break spaces (U+00A0),
        so a narrow screen never splits it. Text messages keep ``phone``: a no-break space is
        outside the SMS alphabet, and would shorten every part of the message to 70 characters."""
        return "\u00a0".join(self.phone.split())

    def hours_in(self, locale: str) -> str:
        """The hours in ``locale``, else in the first language given."""
        texts = dict(self.hours)
        return texts.get(locale.split("_")[0]) or next(iter(texts.values()), "")


def _support(data: dict[str, Any], source: str) -> SupportContact:
    raw = data.pop("support", None)
    if raw is None:
        return SupportContact()
    unknown = set(raw) - set(SupportContact.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{source}: unknown keys in [support]: {', '.join(sorted(unknown))}")
    for key in ("phone", "email"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{source}: [support] {key} is required (a non-empty string)")
    hours = raw.get("hours")
    if (not isinstance(hours, dict) or set(hours) != set(LOCALES)
            or not all(isinstance(text, str) and text.strip() for text in hours.values())):
        raise ConfigError(f"{source}: [support] hours must give the opening hours in each language: "
                          f"{', '.join(LOCALES)}")
    if not PHONE_RE.match(raw["phone"]):
        raise ConfigError(f"{source}: [support] phone must be digits and spaces, like \"09 69 39 39 39\"")
    _local, _at, domain = raw["email"].rpartition("@")
    if not _local or "." not in domain:
        raise ConfigError(f"{source}: [support] email must be an email address")
    address = raw.get("postal_address")
    if (not isinstance(address, list) or not address
            or not all(isinstance(line, str) and line.strip() for line in address)):
        raise ConfigError(f"{source}: [support] postal_address must be a list of lines")
    return SupportContact(phone=raw["phone"].strip(),
                          hours=tuple((locale, hours[locale].strip()) for locale in LOCALES),
                          email=raw["email"].strip(), postal_address=tuple(address))


PHONE_RE = re.compile(r"^\+?[0-9][0-9 ]{3,19}$")


def _is_zone(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True


def _check_support_contact(contact: SupportContact, source: str) -> None:
    """In production members must reach a real mailbox, not a placeholder."""
    _local, _at, domain = contact.email.rpartition("@")
    if not contact.email or is_reserved_domain(domain):
        raise ConfigError(
            f"{source}: [support] email must be the brand's own address in production, "
            f"not {contact.email!r}: members write to it for help"
        )


@dataclass(frozen=True)
class PasskeyPolicy:
    """WebAuthn relying party: the domain passkeys are bound to, and the pages that may use them."""

    rp_id: str
    origins: tuple[str, ...]


LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")


def _origin(url: str) -> tuple[str, str] | None:
    """(origin, host) of an http(s) URL without path, query or credentials; None otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    host = parts.hostname or ""
    if (parts.scheme not in ("http", "https") or not HOST_RE.match(host) or parts.username
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment):
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}", host


def _passkeys(data: dict[str, Any], base_url: str, source: str) -> PasskeyPolicy:
    """[passkeys] rp_id and origins, by default the host and origin of the provider's base URL.

    WebAuthn §5.1.4.1 and §13.4.9: the RP ID is a domain, every origin must be on it
    (or a subdomain), and only https origins are secure, except on localhost.
    """
    raw = data.pop("passkeys", {})
    unknown = set(raw) - {"rp_id", "origins"}
    if unknown:
        raise ConfigError(f"{source}: unknown keys in [passkeys]: {', '.join(sorted(unknown))}")
    base = _origin(base_url.rstrip("/")) if base_url else None
    rp_id = raw.get("rp_id", base[1] if base else "")
    origins = raw.get("origins", [base[0]] if base else [])
    if not isinstance(rp_id, str) or not HOST_RE.match(rp_id):
        raise ConfigError(f"{source}: [passkeys] rp_id must be a domain name, like example.org")
    if not isinstance(origins, list) or not origins or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{source}: [passkeys] origins must be a list of URLs")
    checked = []
    for origin in origins:
        parsed = _origin(origin)
        if parsed is None:
            raise ConfigError(f"{source}: [passkeys] origin {origin!r} must be like https://host[:port]")
        value, host = parsed
        if host != rp_id and not host.endswith(f".{rp_id}"):
            raise ConfigError(f"{source}: [passkeys] origin {origin!r} is not on rp_id {rp_id!r}")
        if value.startswith("http:") and host != "localhost" and not host.endswith(".localhost"):
            raise ConfigError(f"{source}: [passkeys] origin {origin!r} must use https")
        checked.append(value)
    return PasskeyPolicy(rp_id=rp_id, origins=tuple(checked))


@dataclass(frozen=True)
class Tenant:
    slug: str
    brand: str
    portal_name: str
    login_identifier: str
    issuer: str
    default_locale: str
    primary_color: str
    accent_color: str
    terms_version: str
    links: LinkPolicy
    password: PasswordPolicy
    mfa: MfaPolicy
    passkeys: PasskeyPolicy
    accessibility: AccessibilityContact = field(default_factory=AccessibilityContact)
    support: SupportContact = field(default_factory=SupportContact)
    # Where members go once signed in (the brand's portal): the way onward of pages reached
    # outside any sign-in (a welcome after activation, a deleted account).
    portal_url: str = ""
    # The zone of the times shown to members (IANA name).
    timezone: str = "Europe/Paris"
    # Ask members their communication preferences at first sign-in (exposed as a claim).
    communication_preferences: bool = False
    migration: MigrationPolicy = field(default_factory=MigrationPolicy)
    sms: SmsPolicy = field(default_factory=SmsPolicy)
    registration: RegistrationPolicy = field(default_factory=RegistrationPolicy)

    @property
    def logs_in_with_email(self) -> bool:
        return self.login_identifier == "email"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _section(cls, data: dict[str, Any], name: str, source: str):
    raw = data.pop(name, {})
    allowed = set(cls.__dataclass_fields__)
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{source}: unknown keys in [{name}]: {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        expected = type(getattr(cls(), key))
        if expected is int:
            _check_whole(cls, name, key, value, source)
        elif not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{source}: [{name}] {key} must be a {expected.__name__}")
    return cls(**raw)


def _check_whole(cls, name: str, key: str, value: Any, source: str) -> None:
    """A whole number of a tenant file's section, from 1 to its field's ``most``."""
    most = cls.__dataclass_fields__[key].metadata["most"]
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise ConfigError(f"{source}: [{name}] {key} must be a whole number from 1 to {most}")


def _migration(data: dict[str, Any], source: str, login_identifier: str) -> MigrationPolicy:
    raw = data.pop("migration", {})
    unknown = set(raw) - set(MigrationPolicy.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{source}: unknown keys in [migration]: {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        # TOML dates are bare: starts_on = 2026-09-01
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ConfigError(f"{source}: [migration] {key} must be a date (YYYY-MM-DD, unquoted)")
    policy = MigrationPolicy(**raw)
    if raw and login_identifier != "email":
        raise ConfigError(f"{source}: [migration] applies only where members sign in with an email")
    if policy.cutoff_on and not policy.starts_on:
        raise ConfigError(f"{source}: [migration] cutoff_on needs starts_on")
    if policy.cutoff_on and policy.starts_on and policy.cutoff_on <= policy.starts_on:
        raise ConfigError(f"{source}: [migration] cutoff_on must come after starts_on")
    return policy


def is_reserved_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == reserved or domain.endswith(f".{reserved}") for reserved in RESERVED_DOMAINS)


def _check_accessibility_contact(contact: AccessibilityContact, source: str) -> None:
    """In production the statement must name a mailbox someone reads (RGAA: "retour d'information")."""
    _local, _at, domain = contact.email.rpartition("@")
    if not _local or is_reserved_domain(domain):
        raise ConfigError(
            f"{source}: [accessibility] email must be the brand's own address in production, "
            f"not {contact.email!r}: members report accessibility barriers there"
        )


def load_tenant(path: Path, base_url: str, *, production: bool = False,
                posts_letters: bool = False) -> Tenant:
    """One tenant's file; ``production`` also refuses the placeholders shipped for development,
    and codes by post that nobody would post (``posts_letters``: a print-and-mail provider is
    configured)."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    links = _section(LinkPolicy, data, "links", source)
    password = _section(PasswordPolicy, data, "password", source)
    mfa = _section(MfaPolicy, data, "mfa", source)
    accessibility = _section(AccessibilityContact, data, "accessibility", source)
    if accessibility.statement_date and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", accessibility.statement_date):
        raise ConfigError(f"{source}: [accessibility] statement_date must be YYYY-MM-DD")
    if production:
        _check_accessibility_contact(accessibility, source)
    support = _support(data, source)
    if production:
        _check_support_contact(support, source)
    passkeys = _passkeys(data, base_url, source)
    sms = _sms(data, source)
    registration = _section(RegistrationPolicy, data, "registration", source)
    if registration.without_contact not in WITHOUT_CONTACT:
        raise ConfigError(f"{source}: [registration] without_contact must be one of "
                          f"{', '.join(WITHOUT_CONTACT)}")
    if production and registration.without_contact == "letter" and not posts_letters:
        raise ConfigError(f'{source}: [registration] without_contact = "letter" needs '
                          f'IDP_LETTER_BACKEND=http in production (a letter in the outbox is '
                          f'never posted); or choose "review"')
    if password.min_length < 8 or password.max_length < 64 or password.max_length < password.min_length:
        raise ConfigError(f"{source}: [password] needs min_length >= 8 and max_length >= 64")

    required = ("slug", "brand", "portal_name", "login_identifier", "terms_version")
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise ConfigError(f"{source}: missing {', '.join(missing)}")
    slug = data.pop("slug")
    if not SLUG_RE.match(slug) or slug != path.stem:
        raise ConfigError(f"{source}: slug {slug!r} must be lowercase and match the file name")
    if data["login_identifier"] not in LOGIN_IDENTIFIERS:
        raise ConfigError(f"{source}: login_identifier must be one of {', '.join(LOGIN_IDENTIFIERS)}")
    for key in ("primary_color", "accent_color"):
        data.setdefault(key, "#333333")
        if not COLOR_RE.match(data[key]):
            raise ConfigError(f"{source}: {key} must be a #rrggbb colour")
    data.setdefault("default_locale", "fr")
    if not isinstance(data.setdefault("communication_preferences", False), bool):
        raise ConfigError(f"{source}: communication_preferences must be true or false")
    if data["default_locale"] not in LOCALES:
        raise ConfigError(f"{source}: default_locale must be one of {', '.join(LOCALES)}")
    migration = _migration(data, source, data["login_identifier"])
    portal_url = data.setdefault("portal_url", "")
    if not isinstance(portal_url, str) or (portal_url and not re.match(r"^https?://[^\s/]+", portal_url)):
        raise ConfigError(f"{source}: portal_url must be an http(s) URL")
    timezone = data.setdefault("timezone", "Europe/Paris")
    if not _is_zone(timezone):
        raise ConfigError(f"{source}: timezone must be an IANA time zone, like \"Europe/Paris\"")
    issuer = data.pop("issuer", f"{base_url}/{slug}")
    try:
        return Tenant(slug=slug, issuer=issuer, links=links, password=password, mfa=mfa,
                      migration=migration, accessibility=accessibility, passkeys=passkeys, sms=sms,
                      registration=registration, support=support, **data)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def tenants_of(settings: Settings) -> dict[str, Tenant]:
    """The tenants ``settings`` name, loaded and checked against them (``ConfigError``)."""
    return load_tenants(Path(settings.tenants_dir), settings.base_url, production=settings.is_production,
                        posts_letters=settings.letter_backend == "http")


def load_tenants(directory: Path, base_url: str, *, production: bool = False,
                 posts_letters: bool = False) -> dict[str, Tenant]:
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise ConfigError(f"no tenant configuration found in {directory.absolute()}/ (expected "
                          "<slug>.toml files; IDP_TENANTS_DIR names the directory)")
    return {tenant.slug: tenant
            for tenant in (load_tenant(p, base_url, production=production,
                                       posts_letters=posts_letters) for p in paths)}

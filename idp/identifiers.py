"""What members and operators type to name a person: member numbers, emails, mobiles, birth dates.

One reading of each, shared by the forms, the CLI, the registry import, identity matching
and the account services, so a value accepted in one place is accepted, and stored, the
same way everywhere. Pure functions: no Flask, no database.

Each ``parse_*`` returns the canonical form (what is stored and compared) or raises
``InvalidIdentifier``, whose ``reason`` says what is wrong and whose message completes
"<field> …" for operators' reports ("member_number: must be exactly 8 digits").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date

import phonenumbers

MEMBER_NUMBER_LENGTH = 8
EMAIL_MAX_LENGTH = 254  # RFC 5321 §4.5.3.1.3: the longest path, less its angle brackets
DEFAULT_REGION = "FR"
OLDEST_BIRTH_DATE = date(1900, 1, 1)

# Date layouts by the name shown to operators. Digits are ASCII only: "\d" would also take
# Arabic-Indic or full-width digits, which no member types on purpose.
DD_MM_YYYY = "DD/MM/YYYY"
YYYY_MM_DD = "YYYY-MM-DD"
DD_MM_YYYY_DASHES = "DD-MM-YYYY"
DD_MM_YYYY_DOTS = "DD.MM.YYYY"
DD_MM_YYYY_SPACES = "DD MM YYYY"
DDMMYYYY = "DDMMYYYY"
_DATE_LAYOUTS: dict[str, re.Pattern[str]] = {
    DD_MM_YYYY: re.compile(r"(?P<day>[0-9]{1,2})/(?P<month>[0-9]{1,2})/(?P<year>[0-9]{4})"),
    YYYY_MM_DD: re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"),
    DD_MM_YYYY_DASHES: re.compile(r"(?P<day>[0-9]{1,2})-(?P<month>[0-9]{1,2})-(?P<year>[0-9]{4})"),
    DD_MM_YYYY_DOTS: re.compile(r"(?P<day>[0-9]{1,2})\.(?P<month>[0-9]{1,2})\.(?P<year>[0-9]{4})"),
    DD_MM_YYYY_SPACES: re.compile(r"(?P<day>[0-9]{1,2}) +(?P<month>[0-9]{1,2}) +(?P<year>[0-9]{4})"),
    DDMMYYYY: re.compile(r"(?P<day>[0-9]{2})(?P<month>[0-9]{2})(?P<year>[0-9]{4})"),
}
# As printed on French documents, and as date pickers send it; and as typed on a phone's
# keypad of digits (the fields ask for it: inputmode="numeric"), which has no "/".
TYPED_DATE_LAYOUTS = (DD_MM_YYYY, YYYY_MM_DD, DD_MM_YYYY_DASHES, DD_MM_YYYY_DOTS, DD_MM_YYYY_SPACES,
                      DDMMYYYY)

_MEMBER_NUMBER = re.compile(f"[0-9]{{{MEMBER_NUMBER_LENGTH}}}")
# Deliberately basic: one @, something on each side, a dot in the domain, no spaces. Whether
# an address works is proven by the code sent there, not by a pattern.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
# Overseas departments share France's national numbering plan: a member dials their Réunion
# mobile as 0692 …, which is +262 692 …, not +33 692 ….
_OVERSEAS = {"FR": ("RE", "YT", "GP", "BL", "MF", "MQ", "GF")}


# Characters a name or a note must not carry: controls (a terminal's escapes), format characters
# (bidirectional overrides, zero-width ones), surrogates, private use, unassigned, line breaks.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def has_invisible(text: str) -> bool:
    """Whether ``text`` holds a character that shows nothing, or other than itself (``_INVISIBLE``)."""
    return any(unicodedata.category(char) in _INVISIBLE for char in text)


class InvalidIdentifier(ValueError):
    """The text does not read as the identifier asked for.

    ``reason``: ``required`` (nothing typed), ``format`` (not shaped like one),
    ``not_a_number`` / ``invalid`` / ``not_mobile`` (phones), ``invalid`` / ``future`` /
    ``too_old`` (dates).
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_member_number(text: str) -> str:
    """The member number's 8 ASCII digits; spaces anywhere ("2345 6789", copied with tabs or
    non-breaking spaces) are dropped."""
    compact = "".join(text.split())
    if not compact:
        raise InvalidIdentifier("required", "is required")
    if not _MEMBER_NUMBER.fullmatch(compact):
        raise InvalidIdentifier("format", f"must be exactly {MEMBER_NUMBER_LENGTH} digits")
    return compact


def is_member_number(text: str) -> bool:
    """Whether ``parse_member_number`` accepts the text."""
    try:
        parse_member_number(text)
    except InvalidIdentifier:
        return False
    return True


def normalize_email(text: str) -> str:
    """An address as stored and compared: trimmed and lowercased."""
    return text.strip().lower()


def is_email(text: str) -> bool:
    """Whether the text, as given, is shaped like an address (no spaces around it either)."""
    return len(text) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(text) is not None


def parse_email(text: str) -> str:
    """The normalized address, once it is shaped like one."""
    address = normalize_email(text)
    if not address:
        raise InvalidIdentifier("required", "is required")
    if not is_email(address):
        raise InvalidIdentifier("format", "is not a valid email address")
    return address


def parse_mobile(text: str, region: str = DEFAULT_REGION) -> str:
    """A mobile number in E.164; national numbers are read in ``region`` (France: with its
    overseas departments), others start with + or 00."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier("not_a_number", "is not a phone number") from None
    # number_type is UNKNOWN for an invalid number: one call checks both (half the cost of
    # is_valid_number then number_type, which counts in a registry import).
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        for overseas in _OVERSEAS.get(region, ()):
            there = phonenumbers.parse(text, overseas)
            kind = phonenumbers.number_type(there)
            if kind != phonenumbers.PhoneNumberType.UNKNOWN:
                number = there
                break
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise InvalidIdentifier("invalid", "is not a valid phone number")
    if kind not in _MOBILE_TYPES:
        raise InvalidIdentifier("not_mobile", "is not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_birth_date(text: str, *, today: date | None = None,
                     layouts: Sequence[str] = TYPED_DATE_LAYOUTS) -> date:
    """A birth date written in one of ``layouts`` (1 or 2 digits for day and month), between
    1900 and ``today`` (default: the machine's date)."""
    value = text.strip()
    if not value:
        raise InvalidIdentifier("required", "is required")
    for layout in layouts:
        found = _DATE_LAYOUTS[layout].fullmatch(value)
        if found is not None:
            break
    else:
        raise InvalidIdentifier("format", f"is not a date (expected {' or '.join(layouts)})")
    try:
        parsed = date(int(found["year"]), int(found["month"]), int(found["day"]))
    except ValueError:
        raise InvalidIdentifier("invalid", f"{value!r} is not a valid date") from None
    if parsed > (today or date.today()):
        raise InvalidIdentifier("future", "is in the future")
    if parsed < OLDEST_BIRTH_DATE:
        raise InvalidIdentifier("too_old", f"is before {OLDEST_BIRTH_DATE.year}")
    return parsed

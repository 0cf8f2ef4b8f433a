"""Postal addresses as an envelope's window shows them (La Poste's norm, NF Z 10-011).

At most 6 lines of at most 38 characters: who (the member's name), up to three
lines of street, building or post box, then "POSTCODE CITY" in capitals without
accents, and for an address abroad the country, also in capitals. French
addresses have a 5-digit postcode (overseas departments included: 97xxx).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from babel import Locale

from idp.identifiers import has_invisible

MAX_LINE_LENGTH = 38
MAX_LINES = 6
MAX_STREET_LINES = 3
MAX_POSTCODE_LENGTH = 10
DEFAULT_COUNTRY = "FR"

_FRENCH_POSTCODE = re.compile(r"[0-9]{5}")
# Abroad: letters, digits, a space or a hyphen inside (SW1A 1AA, 1000, 10-001, K1A 0B1).
_POSTCODE = re.compile(r"[A-Z0-9](?:[A-Z0-9 -]{0,8}[A-Z0-9])?")
_COUNTRY = re.compile(r"[A-Z]{2}")
# Codes CLDR names that are no country: unknown region, unions, pseudo-locales, outlying Oceania.
_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"})
# Letters that compose with no accent to strip (NFKD leaves them whole).
_PLAIN = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o",
                        "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ß": "SS", "’": "'"})


class InvalidAddress(ValueError):
    """A part of a postal address that cannot be printed or delivered as given."""


def without_accents(text: str) -> str:
    """"Saint-Étienne" → "Saint-Etienne": the norm's last lines carry no accents."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def country_name(code: str) -> str:
    """The country's French name in capitals, for the last line ("BELGIQUE")."""
    name = None if code in _NOT_COUNTRIES else Locale("fr").territories.get(code)
    if name is None:
        raise InvalidAddress(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return without_accents(name).upper()


def check_text(value: str, *, max_length: int = MAX_LINE_LENGTH) -> str:
    """``value`` trimmed, when it is printable on one line of at most ``max_length``."""
    value = value.strip()
    if has_invisible(value):
        raise InvalidAddress("contains a control or invisible character")
    if len(value) > max_length:
        raise InvalidAddress(f"is longer than {max_length} characters")
    return value


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, uppercased; empty means France."""
    code = value.strip().upper() or DEFAULT_COUNTRY
    if not _COUNTRY.fullmatch(code):
        raise InvalidAddress("must be an ISO 3166-1 alpha-2 code (FR, BE, …)")
    country_name(code)
    return code


def check_postcode(value: str, country: str) -> str:
    """A postcode of ``country``: 5 digits in France, letters, digits, spaces and hyphens abroad."""
    code = " ".join(value.split()).upper()
    if country == DEFAULT_COUNTRY:
        if not _FRENCH_POSTCODE.fullmatch(code):
            raise InvalidAddress("must be 5 digits in France")
    elif not _POSTCODE.fullmatch(code):
        raise InvalidAddress(f"must be up to {MAX_POSTCODE_LENGTH} letters, digits, spaces or hyphens")
    return code


@dataclass(frozen=True)
class PostalAddress:
    """Where a letter goes; ``lines()`` are what the envelope's window shows.

    ``name`` is the addressee (the member's first and last name), ``street`` one
    to three lines (number and street, building, post box, locality),
    ``postcode`` and ``city``, ``country`` an ISO 3166-1 alpha-2 code.
    """

    name: str
    street: tuple[str, ...]
    postcode: str
    city: str
    country: str = DEFAULT_COUNTRY

    def __post_init__(self) -> None:
        if not self.street or len(self.street) > MAX_STREET_LINES:
            raise InvalidAddress(f"needs 1 to {MAX_STREET_LINES} street lines")
        if not self.postcode or not self.city.strip():
            raise InvalidAddress("needs a postcode and a city")

    @property
    def abroad(self) -> bool:
        return self.country != DEFAULT_COUNTRY

    def lines(self) -> list[str]:
        """The window's lines, each at most 38 characters, at most 6 of them."""
        locality = without_accents(f"{self.postcode} {self.city}").upper()
        lines = [self.name, *self.street, locality]
        if self.abroad:
            lines.append(country_name(self.country))
        return [" ".join(line.split())[:MAX_LINE_LENGTH] for line in lines if line.strip()]

    def __str__(self) -> str:
        """The lines joined by newlines: the form a letter's recipient is stored in."""
        return "\n".join(self.lines())


def parse_lines(text: str) -> list[str]:
    """The window lines of a stored recipient (``str(PostalAddress)``), checked.

    2 to 6 lines (a name and at least a locality), each at most 38 printable characters.
    """
    lines = text.split("\n")
    if not 2 <= len(lines) <= MAX_LINES:
        raise InvalidAddress(f"needs 2 to {MAX_LINES} lines")
    checked = [check_text(line) for line in lines]
    if not all(checked):
        raise InvalidAddress("has an empty line")
    return checked

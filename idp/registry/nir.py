"""The NIR (n° de sécurité sociale, "numéro INSEE"): structure, key, and birth checks (SPEC §10).

Pure functions, no I/O. A NIR is not a secret (it is printed on cards and
payslips) but it is personal data: never log it whole, use ``redact_nir``.

Layout, 15 characters::

    S YY MM DD CCC OOO KK      S sex, YY/MM birth year/month, DD department,
    1 85 05 75 115 423 17      CCC commune (or country), OOO order, KK key

Born overseas (department 97x / 98x) the department takes three digits and
the commune two. Born abroad (99) CCC is the INSEE country code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# 1/2: men/women; 3/4: temporary numbers for people born abroad; 7/8: temporary (NIA).
SEXES = frozenset("123478")
# Months 20–42 and 50–99 stand for an unknown or fictitious birth month (SPEC §10).
KNOWN_MONTHS = range(1, 13)
SPECIAL_MONTHS = (range(20, 43), range(50, 100))
ABROAD = "99"
HISTORICAL = "96"
OVERSEAS_PREFIXES = ("97", "98")
# Before the 1976 split, Corsica was department 20; NIRs from then still carry it.
CORSICA = ("20", "2A", "2B")

_SHAPE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$")
_WHITESPACE = re.compile(r"\s+")

REASONS = ("format", "sex", "month", "department", "key")
_MESSAGES = {
    "format": "a NIR has 15 characters: 13 digits (2A/2B for Corsica) and a 2-digit key",
    "sex": "the first digit must be 1, 2, 3, 4, 7 or 8",
    "month": "the birth month must be 01–12, 20–42 or 50–99",
    "department": "unknown birth department",
    "key": "the key does not match the number",
}


class InvalidNir(ValueError):
    """The value is not a structurally valid NIR; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(_MESSAGES[reason])


@dataclass(frozen=True)
class Nir:
    """A valid NIR, split into its parts (each as written, e.g. department "2A" or "976")."""

    sex: str
    year: str
    month: str
    department: str
    commune: str
    order: str
    key: str

    @property
    def value(self) -> str:
        parts = (self.sex, self.year, self.month, self.department, self.commune, self.order)
        return "".join(parts) + self.key

    @property
    def month_known(self) -> bool:
        return int(self.month) in KNOWN_MONTHS

    @property
    def born_abroad(self) -> bool:
        return self.department == ABROAD

    def __str__(self) -> str:
        return self.value


def normalize_nir(raw: str) -> str:
    """Strip every space (also non-breaking ones) and uppercase: "1 85 05 2a …" → "185052A…"."""
    return _WHITESPACE.sub("", raw).upper()


def compute_key(first13: str) -> str:
    """The 2-digit key of the first 13 characters: 97 − (number mod 97), 2A read 19, 2B read 18."""
    number = int(first13[:5] + first13[5:7].replace("2A", "19").replace("2B", "18") + first13[7:])
    return f"{97 - number % 97:02d}"


def validate_nir(raw: str) -> Nir:
    """Parse and check a NIR (spaces allowed); raise ``InvalidNir`` naming the first failed rule."""
    value = normalize_nir(raw)
    if not _SHAPE.match(value):
        raise InvalidNir("format")
    if value[0] not in SEXES:
        raise InvalidNir("sex")
    month = int(value[3:5])
    if month not in KNOWN_MONTHS and not any(month in span for span in SPECIAL_MONTHS):
        raise InvalidNir("month")
    department, commune = _department(value)
    if compute_key(value[:13]) != value[13:]:
        raise InvalidNir("key")
    return Nir(
        sex=value[0],
        year=value[1:3],
        month=value[3:5],
        department=department,
        commune=commune,
        order=value[10:13],
        key=value[13:],
    )


def _department(value: str) -> tuple[str, str]:
    two = value[5:7]
    if two in ("2A", "2B"):
        return two, value[7:10]
    if two in OVERSEAS_PREFIXES:
        # Overseas: a 3-digit department, then a 2-digit commune.
        return value[5:8], value[8:10]
    if two in (HISTORICAL, ABROAD) or 1 <= int(two) <= 95:
        return two, value[7:10]
    raise InvalidNir("department")


def is_valid_nir(raw: str) -> bool:
    try:
        validate_nir(raw)
    except InvalidNir:
        return False
    return True


def normalize_department(raw: str) -> str:
    """A department as the NIR writes it: "1" → "01", "2a" → "2A", "976" unchanged."""
    value = normalize_nir(raw)
    return value.zfill(2) if value.isdigit() and len(value) < 2 else value


def nir_matches_birth_date(nir: Nir | str, birth_date: date) -> bool:
    """Year (two last digits) must agree; the month too, unless the NIR's month is unknown."""
    nir = nir if isinstance(nir, Nir) else validate_nir(nir)
    if int(nir.year) != birth_date.year % 100:
        return False
    return not nir.month_known or int(nir.month) == birth_date.month


def nir_matches_department(nir: Nir | str, department: str) -> bool:
    """The NIR's department is the one given; Corsica's 20, 2A and 2B are interchangeable."""
    nir = nir if isinstance(nir, Nir) else validate_nir(nir)
    department = normalize_department(department)
    if nir.department in CORSICA and department in CORSICA:
        # "20" before 1976; a member born in Ajaccio in 1970 may pick 2A from today's list.
        return True
    return nir.department == department


def nir_matches_birth(nir: Nir | str, birth_date: date, department: str) -> bool:
    """Whether a NIR agrees with a birth date and birth department (SPEC §3.2 step 1)."""
    nir = nir if isinstance(nir, Nir) else validate_nir(nir)
    return nir_matches_birth_date(nir, birth_date) and nir_matches_department(nir, department)


def redact_nir(raw: str) -> str:
    """For logs and reports: keep the sex and birth year/month, hide the rest."""
    value = normalize_nir(raw)
    return value[:5] + "•" * max(0, len(value) - 5)

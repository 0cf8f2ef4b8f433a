"""Times and waits as members read them: in their zone and in words, never "UTC" or seconds by
the hundred. Every page and message formats through here (``web.rendering`` gives templates the
``moment``, ``day`` and ``wait`` filters).

A number and its unit ("9 h 52", "25 secondes") are joined by no-break spaces (U+00A0): on a
narrow phone screen a line never ends between them."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_timedelta

# Where the members are, when nothing says otherwise.
PARIS = ZoneInfo("Europe/Paris")

# "3 décembre 2026 à 9 h 52", "3 December 2026 at 9:52": the patterns per language (the spaces
# around the French "h" are no-break ones).
_MOMENT = {"fr": "d MMMM y 'à' H\u00a0'h'\u00a0mm", "en": "d MMMM y 'at' H:mm"}
_DAY = "d MMMM y"


def moment(value: datetime, zone: ZoneInfo, locale: str) -> str:
    """A stored moment (naive UTC, as every column holds it) in ``zone``, in words."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    pattern = _MOMENT.get(locale.split("_")[0], _MOMENT["en"])
    return format_datetime(aware.astimezone(zone), pattern, locale=locale)


def day(value: date, locale: str) -> str:
    """A calendar day in words: "30 juin 2027"."""
    return format_date(value, _DAY, locale=locale)


def wait(seconds: float, locale: str) -> str:
    """A wait, rounded up so the member never comes back too early: "45 secondes" under a
    minute, then whole minutes ("7 minutes"), then whole hours."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        amount = timedelta(seconds=seconds)
    elif seconds < 3600:
        amount = timedelta(minutes=math.ceil(seconds / 60))
    else:
        amount = timedelta(hours=math.ceil(seconds / 3600))
    # threshold=1: 90 minutes stay "2 heures" rather than switch units early. CLDR puts a no-break
    # space in some units and languages and not others: one everywhere.
    return format_timedelta(amount, threshold=1, locale=locale).replace(" ", "\u00a0")

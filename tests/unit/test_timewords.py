"""Times and waits in the words members read (idp/timewords.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from idp.timewords import PARIS, day, moment, wait

# Between a number and its unit: a line never ends there.
NBSP = "\u00a0"


@pytest.mark.parametrize(("stored", "locale", "words"), [
    (datetime(2026, 12, 3, 8, 52), "fr", f"3 décembre 2026 à 9{NBSP}h{NBSP}52"),  # winter: UTC+1
    (datetime(2026, 7, 3, 8, 5), "fr", f"3 juillet 2026 à 10{NBSP}h{NBSP}05"),  # summer: UTC+2
    (datetime(2026, 12, 3, 8, 52), "en", "3 December 2026 at 9:52"),
    (datetime(2026, 12, 3, 8, 52, tzinfo=UTC), "fr", f"3 décembre 2026 à 9{NBSP}h{NBSP}52"),
])
def test_a_stored_moment_is_said_in_paris_time_in_words(stored, locale, words):
    assert moment(stored, PARIS, locale) == words


def test_another_zone_when_the_tenant_names_one():
    reunion = ZoneInfo("Indian/Reunion")
    assert moment(datetime(2026, 12, 3, 8, 52), reunion, "fr") == f"3 décembre 2026 à 12{NBSP}h{NBSP}52"


def test_a_day_in_words():
    assert day(date(2027, 6, 30), "fr") == "30 juin 2027"


@pytest.mark.parametrize(("seconds", "locale", "words"), [
    (30, "fr", f"30{NBSP}secondes"), (59.2, "fr", f"1{NBSP}minute"), (60, "fr", f"1{NBSP}minute"),
    (61, "fr", f"2{NBSP}minutes"), (425, "fr", f"8{NBSP}minutes"), (425, "en", f"8{NBSP}minutes"),
    (3600, "fr", f"1{NBSP}heure"), (5400, "fr", f"2{NBSP}heures"), (0, "fr", f"1{NBSP}seconde"),
    (30, "en", f"30{NBSP}seconds"),
])
def test_waits_are_rounded_up_in_the_largest_sensible_unit(seconds, locale, words):
    assert wait(seconds, locale) == words

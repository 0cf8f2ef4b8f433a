"""Times and waits in the words members read (idp/timewords.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from idp.timewords import PARIS, day, moment, wait


@pytest.mark.parametrize(("stored", "locale", "words"), [
    (datetime(2026, 12, 3, 8, 52), "fr", "3 décembre 2026 à 9 h 52"),  # winter: UTC+1
    (datetime(2026, 7, 3, 8, 5), "fr", "3 juillet 2026 à 10 h 05"),  # summer: UTC+2
    (datetime(2026, 12, 3, 8, 52), "en", "3 December 2026 at 9:52"),
    (datetime(2026, 12, 3, 8, 52, tzinfo=UTC), "fr", "3 décembre 2026 à 9 h 52"),
])
def test_a_stored_moment_is_said_in_paris_time_in_words(stored, locale, words):
    assert moment(stored, PARIS, locale) == words


def test_another_zone_when_the_tenant_names_one():
    reunion = ZoneInfo("Indian/Reunion")
    assert moment(datetime(2026, 12, 3, 8, 52), reunion, "fr") == "3 décembre 2026 à 12 h 52"


def test_a_day_in_words():
    assert day(date(2027, 6, 30), "fr") == "30 juin 2027"


@pytest.mark.parametrize(("seconds", "locale", "words"), [
    (30, "fr", "30 secondes"), (59.2, "fr", "1 minute"), (60, "fr", "1 minute"),
    (61, "fr", "2 minutes"), (425, "fr", "8 minutes"), (425, "en", "8 minutes"),
    (3600, "fr", "1 heure"), (5400, "fr", "2 heures"), (0, "fr", "1 seconde"),
])
def test_waits_are_rounded_up_in_the_largest_sensible_unit(seconds, locale, words):
    assert wait(seconds, locale) == words

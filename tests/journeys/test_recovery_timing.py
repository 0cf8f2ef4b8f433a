"""Forgot password and forgot identifier take the same time whatever the identifier (SPEC §5, §6).

The page already says the same; the time it takes must not tell either. Each test sends
60 requests for an identifier that exists and 60 for one that does not, interleaved (so
a slower moment of the machine weighs on both alike), and compares the medians.
"""

from __future__ import annotations

import statistics
import time
from datetime import date

import pytest

from idp import ratelimit
from idp.registry.models import Member
from tests.flows import csrf_token

# Known today: an existing identifier also signs a link, renders and stores the email and
# its audit event, and makes one delivery attempt after the commit (10 to 18 ms more here).
# Strict: these start failing, as a reminder to drop the mark, once the paths are equal.
pytestmark = pytest.mark.xfail(strict=True, reason="the known identifier's path does more work")

ROUNDS = 60
MAX_DIFFERENCE = 0.005  # seconds, between the two medians


@pytest.fixture(autouse=True)
def _no_limits(monkeypatch):
    # Past the limits nothing is done for either identifier: the paths to compare are the
    # ones below them.
    for name in ("RECOVERY_PER_IP", "RECOVERY_PER_IDENTIFIER", "IDENTIFIER_REMINDER_PER_IP"):
        limit = getattr(ratelimit, name)
        monkeypatch.setattr(ratelimit, name, ratelimit.Limit(limit.name, 10**6, limit.window))


def _medians(client, path: str, known: dict, unknown: dict) -> tuple[float, float]:
    token = csrf_token(client.get(path).data)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(3):  # warm up both paths (templates compiled, statements cached)
        for data in (known, unknown):
            client.post(path, data={**data, "csrf_token": token})
    for _ in range(ROUNDS):
        for label, data in (("known", known), ("unknown", unknown)):
            started = time.perf_counter()
            response = client.post(path, data={**data, "csrf_token": token})
            timings[label].append(time.perf_counter() - started)
            assert response.status_code == 200
    return statistics.median(timings["known"]), statistics.median(timings["unknown"])


def test_forgot_password_takes_the_same_time_for_a_known_and_an_unknown_identifier(client, make):
    account = make.account("malakoff")
    known, unknown = _medians(client, "/malakoff/forgot-password", {"identifier": account.email},
                              {"identifier": "personne.inconnue@example.org"})
    assert abs(known - unknown) < MAX_DIFFERENCE, (known, unknown)


def test_forgot_identifier_takes_the_same_time_for_a_known_and_an_unknown_member_number(client, make):
    account = make.account("malakoff")
    known, unknown = _medians(client, "/malakoff/forgot-identifier",
                              {"member_number": account.member_number}, {"member_number": "99999998"})
    assert abs(known - unknown) < MAX_DIFFERENCE, (known, unknown)


def test_forgot_identifier_takes_the_same_time_for_a_known_and_an_unknown_identity(client, db, make):
    db.add(Member(tenant="miel", member_number="76543210", nir="262082A00403607",
                  last_name="N'DIAYE", first_name="Françoise", birth_date=date(1962, 8, 30),
                  role="principal", kind="health", status="active"))
    db.commit()
    make.account("miel", member_number="76543210", email="f.ndiaye@example.org",
                 given_name="Françoise", family_name="N'DIAYE", birthdate=date(1962, 8, 30))
    identity = {"nir": "262082A00403607", "birth_date": "30/08/1962", "birth_department": "2A",
                "last_name": "Ndiaye", "first_name": "Françoise"}
    known, unknown = _medians(client, "/miel/forgot-identifier", identity,
                              {**identity, "first_name": "Awa"})
    assert abs(known - unknown) < MAX_DIFFERENCE, (known, unknown)

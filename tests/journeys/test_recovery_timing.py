"""The recovery pages take as long for a known identifier as for an unknown one (SPEC §6).

Production's delivery mode: the page records the request and a worker does the rest
after it, so the page's work is the same whatever the identifier. Each page is asked 60
times for a known identifier and 60 times for an unknown one, interleaved, on PostgreSQL
and Redis; the medians may differ by 5 ms at most (``tests.timing``).
"""

from __future__ import annotations

from datetime import date

import pytest

from idp import create_app, ratelimit
from idp.registry.models import Member
from idp.registry.nir import compute_key
from tests.conftest import _reset
from tests.factories import Factories
from tests.flows import csrf_token
from tests.timing import assert_as_long

ROUNDS = 60
WARM_UP = 5
TOLERANCE_MS = 5.0
MIEL_NIR = "262082A00403607"
UNKNOWN_NIR = "262082A004099" + compute_key("262082A004099")


@pytest.fixture
def worker_app(settings, monkeypatch):
    # The limits would stop the work after a few requests, the same for both identifiers:
    # lifted here so that every request does all it does.
    for name in ("RECOVERY_PER_IDENTIFIER", "RECOVERY_PER_IP", "IDENTIFIER_REMINDER_PER_IP"):
        limit = getattr(ratelimit, name)
        monkeypatch.setattr(ratelimit, name, ratelimit.Limit(limit.name, 10_000, limit.window))
    app = create_app({**settings, "message_delivery": "worker"})
    app.config["TESTING"] = True
    yield app
    _reset(app)


@pytest.fixture
def known(worker_app):
    services = worker_app.extensions["idp"]
    with services.database.session() as session:
        session.add(Member(tenant="miel", member_number="76543210", nir=MIEL_NIR,
                           last_name="N'DIAYE", first_name="Françoise",
                           birth_date=date(1962, 8, 30), role="principal", kind="health",
                           status="active"))
        session.commit()
        make = Factories(worker_app, session)
        make.account("malakoff", email="known@example.org", member_number="12345678")
        make.account("miel", member_number="76543210", email="f.ndiaye@example.org",
                     given_name="Françoise", family_name="N'DIAYE",
                     birthdate=date(1962, 8, 30))


def _probe(client, path: str, token: str, form: dict):
    def post():
        answer = client.post(path, data={**form, "csrf_token": token})
        assert answer.status_code == 303, answer.data
    return post


def _miel_identity(nir: str) -> dict:
    return {"nir": nir, "birth_date": "30/08/1962", "birth_department": "2A",
            "last_name": "N'Diaye", "first_name": "Françoise"}


PAGES = {
    "malakoff forgot password": ("/malakoff/forgot-password", {"identifier": "known@example.org"},
                                 {"identifier": "nobody@example.org"}),
    "miel forgot password": ("/miel/forgot-password", {"identifier": "76543210"},
                             {"identifier": "76543299"}),
    "malakoff forgot identifier": ("/malakoff/forgot-identifier", {"member_number": "12345678"},
                                   {"member_number": "12345699"}),
    "miel forgot identifier": ("/miel/forgot-identifier", _miel_identity(MIEL_NIR),
                               _miel_identity(UNKNOWN_NIR)),
}


@pytest.mark.alone
@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_a_known_identifier_answers_as_fast_as_an_unknown_one(worker_app, known, page):
    path, known_form, unknown_form = page
    client = worker_app.test_client()
    token = csrf_token(client.get(path).data)
    print(path)
    assert_as_long({"known": _probe(client, path, token, known_form),
                    "unknown": _probe(client, path, token, unknown_form)},
                   rounds=ROUNDS, warm_up=WARM_UP, tolerance=lambda _slower: TOLERANCE_MS)

"""What operators see of a member's whole journey: JSON logs without a secret, and metrics.

The journey: Miel registration by NIR (SMS code, password link), first sign-in
with the terms and an email code, tokens, a refresh, userinfo and logout.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from idp import create_app
from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.db import utcnow
from idp.logs import LIBRARY_LEVELS, JsonFormatter
from idp.registry.models import Member
from tests.flows import Flow, csrf_token, query

NIR = "262082A00403607"
NIR_TYPED = "2 62 08 2A 004 036 07"
PASSWORD = "Granit-Rose-Bastion-48!"
METRICS_TOKEN = "metrics-token-0123456789abcdef0123456789"


@pytest.fixture
def json_logs():
    """Every record at DEBUG, formatted as production does while it is emitted, with the
    levels production gives to libraries."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *LIBRARY_LEVELS)}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name, floor in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(floor)
    yield stream
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@dataclass
class Journey:
    account: Account
    secrets: dict[str, str] = field(default_factory=dict)


def _newest(db, template: str) -> Message:
    db.expire_all()
    return db.scalars(select(Message).where(Message.template == template)
                      .order_by(Message.id.desc())).first()


def _post_form(client, url: str, **data):
    page = client.get(url)
    return client.post(url, data={**data, "csrf_token": csrf_token(page.data)})


def run_journey(client, db, make) -> Journey:
    db.add(Member(tenant="miel", member_number="76543210", nir=NIR, last_name="N'DIAYE",
                  first_name="Françoise", birth_date=date(1962, 8, 30), role="principal",
                  kind="health", status="active", mobile="+33781223344"))
    db.commit()
    found: dict[str, str] = {"password": PASSWORD, "nir": NIR[:13], "nir typed": NIR_TYPED}

    assert _post_form(client, "/miel/register", nir=NIR_TYPED, birth_date="30/08/1962",
                      birth_department="2A", last_name="Ndiaye",
                      first_name="francoise").status_code == 303
    assert _post_form(client, "/miel/register/contact", email="f.ndiaye@example.org",
                      email_confirm="f.ndiaye@example.org", mobile="07 81 22 33 44",
                      accept_terms="y").status_code == 303
    found["registration code"] = re.search(r"\d{6}", _newest(db, "registration_code").body_text)[0]
    assert _post_form(client, "/miel/register/code",
                      code=found["registration code"]).status_code == 303
    link = re.search(r"http://localhost(/miel/activate/(\S+))", _newest(db, "activation").body_text)
    found["password link"] = link[2]
    assert _post_form(client, link[1], birth_date="30/08/1962", password=PASSWORD,
                      password_confirm=PASSWORD).status_code == 303

    account = db.scalar(select(Account).where(Account.member_number == "76543210"))
    rp = make.client("miel")
    found["client secret"] = rp.secret
    flow = Flow(client, "miel", rp, account)
    signed_in = flow.login(flow.authorize(scope="openid member offline_access"), password=PASSWORD)
    terms = client.get(signed_in.headers["Location"])
    found["sign-in code"] = flow.last_code()
    accepted = client.post("/miel/login/terms", data={
        "accept_terms": "y", "statements": "post", "letters": "email",
        "csrf_token": csrf_token(terms.data)})
    found["authorization code"] = query(accepted.headers["Location"])["code"]
    found["session cookie"] = client.get_cookie("__Host-idp-session").value

    tokens = flow.token(found["authorization code"]).json
    refreshed = flow.refresh(tokens["refresh_token"]).json
    found |= {f"first {name}": tokens[name] for name in ("access_token", "refresh_token", "id_token")}
    found |= {f"refreshed {name}": refreshed[name] for name in ("access_token", "refresh_token")}
    userinfo = client.get("/miel/userinfo",
                          headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert userinfo.json["member_number"] == "76543210"

    logout = client.get("/miel/logout", query_string={"id_token_hint": tokens["id_token"]})
    page = client.get(logout.headers["Location"])
    done = client.post("/miel/logout/confirm", data={"confirm": "x",
                                                     "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    return Journey(account, found)


def test_a_whole_journey_logs_json_lines_without_any_secret(app, client, db, make, json_logs):
    journey = run_journey(client, db, make)

    lines = json_logs.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    requests = [r for r in records if r["logger"] == "idp.request"]
    assert len(requests) > 20
    for record in requests:
        assert {"time", "level", "logger", "message", "request_id", "tenant", "method", "path",
                "status", "duration_ms"} <= record.keys()
        assert "?" not in record["path"]
    assert {r["tenant"] for r in requests} == {"miel"}
    assert any(r["path"] == "/miel/activate/[redacted]" for r in requests)
    assert any(r["path"] == "/miel/token" and r["status"] == 200 for r in requests)

    text = json_logs.getvalue()
    leaked = {name: value for name, value in journey.secrets.items() if value in text}
    assert leaked == {}


def _samples(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_the_journey_and_read_the_queues(app, client, db, make):
    before = _samples(client)
    run_journey(client, db, make)
    stranger = Flow(client, "malakoff", make.client(), make.account("malakoff"))
    assert stranger.login(stranger.authorize(), password="Wrong-password-1!").status_code == 401
    db.add_all([
        RegistrationRequest(tenant="miel", member_id=db.scalar(select(Member.id)),
                            reason="near_miss", submitted={}, differences=[]),
        Message(tenant="miel", channel="sms", template="otp_code", recipient="+33600000000",
                body_text="x", status="pending", created_at=utcnow() - timedelta(minutes=5)),
    ])
    db.commit()
    after = _samples(client)

    def grew(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("idp_sign_ins_total", tenant="miel", outcome="success") == 1
    assert grew("idp_sign_ins_total", tenant="malakoff", outcome="failure") == 1
    assert grew("idp_otp_codes_sent_total", tenant="miel", channel="email") == 1
    assert grew("idp_registrations_total", tenant="miel", outcome="accepted") == 1
    assert grew("idp_message_deliveries_total", channel="sms", template="registration_code",
                outcome="sent") == 1
    assert grew("idp_message_deliveries_total", channel="email", template="otp_code",
                outcome="sent") == 1
    assert grew("idp_http_request_duration_seconds_count", endpoint="oidc_api.token",
                method="POST") == 2
    assert grew("idp_http_requests_total", endpoint="oidc_api.token", method="POST", status="200") == 2
    assert _value(after, "idp_metrics_database_up") == 1
    assert _value(after, "idp_review_queue_size", tenant="miel") == 1
    assert _value(after, "idp_message_queue_backlog", channel="sms", status="pending") == 1
    assert _value(after, "idp_message_queue_oldest_pending_seconds") >= 300
    # Latency is labelled by route name, never by the URL a request asked for.
    endpoints = {dict(labels)["endpoint"] for name, labels in after
                 if name == "idp_http_request_duration_seconds_count"}
    assert not [endpoint for endpoint in endpoints if "/" in endpoint]


def test_a_wrong_code_is_counted_by_channel_and_reason(app, client, flow):
    before = _samples(client)
    flow.give_password(prompt=None)
    choose = client.get("/malakoff/login/code")
    sent = client.post("/malakoff/login/code", data={"channel": "email",
                                                      "csrf_token": csrf_token(choose.data)})
    page = client.get(sent.headers["Location"])
    wrong = "000000" if flow.last_code() != "000000" else "111111"
    client.post("/malakoff/login/code/verify", data={"code": wrong,
                                                     "csrf_token": csrf_token(page.data)})
    after = _samples(client)
    labels = {"tenant": "malakoff", "channel": "email", "reason": "invalid"}
    assert _value(after, "idp_otp_codes_failed_total", **labels) - _value(
        before, "idp_otp_codes_failed_total", **labels) == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}"])
def test_metrics_with_a_token_refuse_anyone_else(settings, authorization):
    app = create_app({**settings, "metrics_token": METRICS_TOKEN})
    client = app.test_client()
    headers = {"Authorization": authorization} if authorization else {}
    refused = client.get("/metrics", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"idp_" not in refused.data
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                      ).status_code == 200
    app.extensions["idp"].database.engine.dispose()

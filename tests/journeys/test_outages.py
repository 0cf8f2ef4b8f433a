"""Outages during sign-in: a stopped SMTP server delays the code, never loses it; an
unreachable Redis gives a clear 503, never a 500 and never a skipped code check."""

from __future__ import annotations

import re
import time

import pytest

from idp import create_app
from tests.conftest import IdpCliRunner, _reset
from tests.factories import Factories
from tests.flows import Flow, csrf_token, query
from tests.servers import SmtpServer


@pytest.fixture
def smtp_app(settings):
    server = SmtpServer()  # a port, with nothing listening yet
    # Retries after 1 s instead of 30 s, so the test does not wait for the backoff.
    app = create_app({**settings, "mail_backend": "smtp", "smtp_host": "127.0.0.1",
                      "smtp_port": server.port, "smtp_security": "none",
                      "message_retry_base_seconds": 1})
    yield app, server
    server.stop()
    _reset(app)


def _to_code_page(flow):
    posted = flow.give_password(prompt=None)
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    return flow.http.get("/malakoff/login/code")


def test_code_email_is_delayed_while_smtp_is_down_and_arrives_after(smtp_app):
    app, smtp = smtp_app
    db = app.extensions["idp"].database.session()
    make = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", make.client(), make.account())

    choose = _to_code_page(flow)
    sent = flow.http.post("/malakoff/login/code", data={
        "channel": "email", "csrf_token": csrf_token(choose.data)})
    assert sent.status_code == 303 and "delayed=1" in sent.headers["Location"]
    page = flow.http.get(sent.headers["Location"])
    assert "plus de temps que prévu".encode() in page.data
    assert smtp.inbox == []

    smtp.start()
    time.sleep(1.1)
    result = IdpCliRunner(app).invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert len(smtp.inbox) == 1
    mail = smtp.inbox[0].message
    assert mail["To"] == flow.account.email
    code = re.search(r"\b(\d{6})\b", mail.get_body(("plain",)).get_content()).group(1)
    verified = flow.http.post("/malakoff/login/code/verify", data={
        "code": code, "csrf_token": csrf_token(page.data)})
    assert verified.status_code == 303
    final = flow.http.get(verified.headers["Location"])
    assert "code" in query(final.headers["Location"])
    db.close()


def test_redis_outage_is_a_503_and_the_code_is_never_skipped(settings, redis_server):
    app = create_app({**settings, "redis_url": redis_server.url})
    db = app.extensions["idp"].database.session()
    factories = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", factories.client(), factories.account())
    choose = _to_code_page(flow)
    flow.http.post("/malakoff/login/code", data={"channel": "email",
                                                 "csrf_token": csrf_token(choose.data)})
    code = flow.last_code()

    redis_server.stop()
    verify = flow.http.post("/malakoff/login/code/verify", data={
        "code": code, "csrf_token": csrf_token(choose.data)})
    assert verify.status_code == 503
    assert "momentanément indisponible".encode() in verify.data
    assert flow.http.get("/malakoff/authorize", query_string=flow.params()).status_code == 503
    assert app.test_client().get("/readyz").status_code == 503

    redis_server.start()
    # Sessions lived in the Redis that went away: the member starts again, and it works.
    assert app.test_client().get("/readyz").status_code == 200
    fresh = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    assert "code" in query(fresh.sign_in().headers["Location"])
    db.close()
    _reset(app)

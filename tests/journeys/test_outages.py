"""Outages during sign-in and registration, on servers the tests start and stop: a stopped
SMTP server delays a message, never loses it, and the worker delivers it once back; an
unreachable Redis or PostgreSQL gives a clear 503, never a 500 and never a skipped code
check, and the flow goes on once it is back; a registration cut short (database crash,
worker killed) leaves nothing half-created."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from idp import create_app
from idp.accounts.models import Account
from idp.channels.models import Message
from idp.registry.models import Member
from tests.conftest import IdpCliRunner, _reset
from tests.factories import Factories
from tests.flows import Flow, csrf_token, last_code, query, sms_code_step
from tests.servers import SmtpServer, node_environment

UNAVAILABLE = "momentanément indisponible".encode()


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


class HeldBack(NamedTuple):
    app: Flask
    smtp: SmtpServer
    db: Session
    flow: Flow
    page: TestResponse


@pytest.fixture
def code_held_back(smtp_app):
    """A member asked for an email code while SMTP is down; the code page says it is delayed."""
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
    yield HeldBack(app, smtp, db, flow, page)
    db.close()


def test_code_email_is_delayed_while_smtp_is_down_and_arrives_after(code_held_back):
    app, smtp, _db, flow, page = code_held_back
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
    assert "code" in query(verified.headers["Location"])


def test_a_code_held_back_past_its_end_is_never_sent(code_held_back):
    app, smtp, db, _flow, _page = code_held_back
    queued = db.scalars(select(Message).where(Message.template == "otp_code")).one()
    # The message ends with its code: the tenant's 3 minutes.
    assert 175 <= (queued.expires_at - queued.created_at).total_seconds() <= 180

    smtp.start()
    services = app.extensions["idp"]
    later = queued.expires_at + timedelta(seconds=1)
    services.channels = dataclasses.replace(services.channels, clock=lambda: later)
    runner = IdpCliRunner(app)
    result = runner.invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 0, delayed 0, failed 0, expired 1" in result.output
    assert smtp.inbox == []
    listed = runner.invoke(args=["outbox", "list", "--status", "expired"])
    assert f"{queued.id} " in listed.output and "expired: 1" in listed.output


def test_a_code_replaced_while_held_back_is_withdrawn(code_held_back):
    app, smtp, db, flow, page = code_held_back
    switched = flow.http.post("/malakoff/login/code/send", data={
        "channel": "sms", "csrf_token": csrf_token(page.data)})
    assert switched.status_code == 303
    db.expire_all()
    email, sms = db.scalars(select(Message).where(Message.template == "otp_code")
                            .order_by(Message.id)).all()
    assert (email.channel, email.status) == ("email", "expired")
    assert (sms.channel, sms.status) == ("sms", "sent")

    smtp.start()
    result = IdpCliRunner(app).invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert smtp.inbox == [], "the email's code no longer works: it never goes out"
    # The SMS code is the one that signs in.
    code = re.search(r"\b(\d{6})\b", sms.body_text).group(1)
    verify = flow.http.get("/malakoff/login/code/verify")
    verified = flow.http.post("/malakoff/login/code/verify", data={
        "code": code, "csrf_token": csrf_token(verify.data)})
    assert verified.status_code == 303


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


# -- PostgreSQL, and registrations cut short ------------------------------------------------


@pytest.fixture
def pg_settings(settings, postgres_server):
    """The test settings on a fresh database of the test run's own PostgreSQL."""
    return {**settings, "database_url": postgres_server.create_database()}


def _counts(database_url: str) -> tuple[int, int]:
    """(accounts, messages) as committed."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        counted = (connection.scalar(select(func.count()).select_from(Account)),
                   connection.scalar(select(func.count()).select_from(Message)))
    engine.dispose()
    return counted


def _add_member(app) -> None:
    db = app.extensions["idp"].database.session()
    db.add(Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
                  first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
                  kind="health", status="active", mobile="+33612345678"))
    db.commit()
    db.close()


def _registration(page: bytes) -> dict:
    return {"member_number": "23456789", "last_name": "Dupont-Morel", "first_name": "Jean-Pierre",
            "birth_date": "23/11/1949", "email": "jp.dupont@example.org",
            "email_confirm": "jp.dupont@example.org", "mobile": "06 12 34 56 78",
            "accept_terms": "y", "csrf_token": csrf_token(page)}


def _code_step(app: Flask, page: bytes) -> dict:
    """The form of registration's last step, with the code that step one sent by SMS."""
    return {"code": last_code(app, "sms", "registration_code"), "csrf_token": csrf_token(page)}


class MessagesLocked:
    """Holds the messages table so that a registration stops inside its transaction: after
    the account row, before the activation email that must come with it."""

    def __init__(self, database_url: str):
        self.engine = create_engine(database_url)
        self.connection = self.engine.connect()
        self.connection.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))

    def wait_for_a_blocked_insert(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self.engine.connect() as probe:
                if probe.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'INSERT INTO messages%'")):
                    return
            time.sleep(0.05)
        raise AssertionError("the registration never reached the activation email")

    def release(self) -> None:
        """Let the registration go on (or, after a crash, close what is left)."""
        with contextlib.suppress(DBAPIError):  # after a crash the lock went with the server
            self.connection.rollback()
        self.connection.close()
        self.engine.dispose()


def test_postgres_outage_mid_sign_in_is_a_503_and_the_sign_in_goes_on_after(
        pg_settings, postgres_server):
    app = create_app(pg_settings)
    db = app.extensions["idp"].database.session()
    factories = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", factories.client(), factories.account())
    choose = _to_code_page(flow)
    operator = app.test_client()

    postgres_server.stop()
    send = flow.http.post("/malakoff/login/code", data={"channel": "email",
                                                        "csrf_token": csrf_token(choose.data)})
    assert send.status_code == 503 and UNAVAILABLE in send.data
    assert send.headers["Retry-After"]
    ready = operator.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"] == {"database": "unavailable", "store": "ok"}
    assert operator.get("/healthz").status_code == 200
    scrape = operator.get("/metrics")
    assert scrape.status_code == 200 and b"idp_metrics_database_up 0.0" in scrape.data

    postgres_server.start()
    assert operator.get("/readyz").status_code == 200
    # The same browser goes on where it was: its sign-in lives in the store, not in the database.
    sent = flow.http.post("/malakoff/login/code", data={"channel": "email",
                                                        "csrf_token": csrf_token(choose.data)})
    assert sent.status_code == 303, sent.data.decode()[-1500:]
    page = flow.http.get(sent.headers["Location"])
    verified = flow.http.post("/malakoff/login/code/verify", data={
        "code": flow.last_code(), "csrf_token": csrf_token(page.data)})
    assert verified.status_code == 303
    assert "code" in query(verified.headers["Location"])
    db.close()
    _reset(app)


def test_the_page_of_a_finished_sign_in_during_a_database_outage_is_a_503(pg_settings, postgres_server):
    """Whether the browser is still signed in is the database's to say: unknown, the page says
    to come back later."""
    app = create_app(pg_settings)
    db = app.extensions["idp"].database.session()
    factories = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", factories.client(), factories.account())
    flow.code()
    postgres_server.stop()
    try:
        back = flow.http.get("/malakoff/login/code")
        assert back.status_code == 503 and UNAVAILABLE in back.data
        assert back.headers["Retry-After"]
    finally:
        postgres_server.start()
    assert "Connexion déjà effectuée".encode() in flow.http.get("/malakoff/login/code").data
    db.close()
    _reset(app)


def test_a_database_crash_inside_a_registration_leaves_nothing_half_created(
        pg_settings, postgres_server):
    app = create_app(pg_settings)
    _add_member(app)
    browser = app.test_client()
    assert browser.post("/malakoff/register", data=_registration(
        browser.get("/malakoff/register").data)).status_code == 303
    form = _code_step(app, browser.get("/malakoff/register/code").data)
    lock = MessagesLocked(pg_settings["database_url"])
    answers = []
    request = threading.Thread(target=lambda: answers.append(
        browser.post("/malakoff/register/code", data=form)))
    request.start()
    lock.wait_for_a_blocked_insert()

    postgres_server.stop()
    request.join(timeout=30)
    (answer,) = answers
    assert answer.status_code == 503 and UNAVAILABLE in answer.data

    lock.release()
    postgres_server.start()
    assert _counts(pg_settings["database_url"]) == (0, 1)  # the SMS code of step one only
    # The member tries again, and gets the one account with its activation email.
    again = sms_code_step(browser, "malakoff", browser.post("/malakoff/register", data=_registration(
        browser.get("/malakoff/register").data)))
    assert again.status_code == 303, again.data.decode()[-3000:]
    assert _counts(pg_settings["database_url"]) == (1, 3)
    _reset(app)


@pytest.mark.server
def test_a_worker_killed_inside_a_registration_leaves_nothing_half_created(
        pg_settings, redis_server, provider_nodes):
    app = create_app({**pg_settings, "redis_url": redis_server.url})
    _add_member(app)
    node = provider_nodes(node_environment(pg_settings, redis_url=redis_server.url,
                                           cookie_secure=False))
    browser = requests.Session()

    def step_one() -> dict:
        assert browser.post(f"{node.url}/malakoff/register", allow_redirects=False, timeout=30,
                            data=_registration(browser.get(f"{node.url}/malakoff/register",
                                                           timeout=30).content)).status_code == 303
        return _code_step(app, browser.get(f"{node.url}/malakoff/register/code", timeout=30).content)

    form = step_one()
    lock = MessagesLocked(pg_settings["database_url"])
    outcome = []

    def register():
        try:
            outcome.append(browser.post(f"{node.url}/malakoff/register/code", data=form,
                                        allow_redirects=False, timeout=30).status_code)
        except requests.ConnectionError as exc:
            outcome.append(exc)

    request = threading.Thread(target=register)
    request.start()
    lock.wait_for_a_blocked_insert()
    (worker,) = node.worker_pids()
    os.kill(worker, signal.SIGKILL)
    request.join(timeout=30)
    assert isinstance(outcome[0], requests.ConnectionError)
    lock.release()
    assert _counts(pg_settings["database_url"]) == (0, 1)  # the SMS code of step one only

    # The server starts a new worker; the member tries again and it works.
    deadline = time.monotonic() + 20
    while node.worker_pids() in ([], [worker]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.answers_within(20)
    again = browser.post(f"{node.url}/malakoff/register/code", data=step_one(),
                         allow_redirects=False, timeout=30)
    assert again.status_code == 303 and again.headers["Location"].endswith("/register/sent")
    assert _counts(pg_settings["database_url"]) == (1, 3)
    _reset(app)


def test_the_worker_delivers_what_smtp_and_database_outages_held_back(
        pg_settings, postgres_server, tmp_path):
    smtp = SmtpServer()  # a port, with nothing listening yet
    smtp_settings = {**pg_settings, "mail_backend": "smtp", "smtp_host": "127.0.0.1",
                     "smtp_port": smtp.port, "smtp_security": "none",
                     "message_retry_base_seconds": 1}
    app = create_app(smtp_settings)
    _add_member(app)
    browser = app.test_client()
    registered = sms_code_step(browser, "malakoff", browser.post("/malakoff/register", data=_registration(
        browser.get("/malakoff/register").data)))
    assert registered.status_code == 303
    # The account, the SMS of its code and the queued activation email.
    assert _counts(pg_settings["database_url"]) == (1, 2)

    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(  # noqa: S603 - the idp command of this environment
        [str(Path(sys.executable).with_name("idp")), "outbox", "work", "--interval", "0.2"],
        env=node_environment(smtp_settings), stdout=log, stderr=subprocess.STDOUT)
    output = tmp_path / "worker.log"
    try:
        deadline = time.monotonic() + 30
        while b"delivering queued messages" not in output.read_bytes():
            assert time.monotonic() < deadline and worker.poll() is None, output.read_text()
            time.sleep(0.1)
        postgres_server.stop()
        time.sleep(1)
        postgres_server.start()
        smtp.start()
        deadline = time.monotonic() + 30
        while not smtp.inbox and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert worker.poll() is None, "the worker must ride out the outages"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
        log.close()
        smtp.stop()
    lines = output.read_text().splitlines()
    assert worker.returncode == 0, lines
    assert any("database error" in line for line in lines), lines
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    db = app.extensions["idp"].database.session()
    message = db.scalar(select(Message).where(Message.channel == "email"))
    assert any(record["message"].startswith(f"message {message.id} sent") for record in logged), lines
    assert [mail.message["To"] for mail in smtp.inbox] == ["jp.dupont@example.org"]
    assert message.status == "sent" and message.attempts >= 2
    db.close()
    _reset(app)


def test_the_first_request_after_postgresql_ended_the_connections_succeeds(flow, app):
    """What a restart or failover does to the pooled connections: the server ends them.
    The pool replaces them at checkout, so no request fails once the server is back."""
    database = app.extensions["idp"].database
    if not database.url.startswith("postgresql"):
        pytest.skip("only PostgreSQL ends its clients' connections")
    tokens = flow.tokens()
    admin = create_engine(database.url)
    with admin.connect() as connection:
        ended = connection.execute(text(
            "SELECT pid FROM pg_stat_activity, pg_terminate_backend(pid) "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalars().all()
    assert ended
    for _ in range(100):
        with admin.connect() as connection:
            alive = connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                                       {"pids": ended}).scalar()
        if not alive:
            break
        time.sleep(0.05)
    admin.dispose()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 200
    code = query(flow.authorize(prompt="none").headers["Location"])["code"]
    assert flow.token(code).status_code == 200

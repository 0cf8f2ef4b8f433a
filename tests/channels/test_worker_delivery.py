"""Production's delivery ("worker" mode): a request queues and wakes the worker, it never
talks to SMTP or the SMS gateway itself, so a relay that hangs never holds a page; the
worker, woken at the commit, sends a code within a second; the senders' waits are bounded."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from idp import create_app
from idp.channels import dispatch
from idp.channels.models import Message
from idp.channels.senders import DeliveryError, HttpSmsSender, SmtpEmailSender
from idp.config import load_settings
from idp.demo import setup as demo_setup
from idp.demo.setup import DemoWorker
from idp.wiring import worker_tasks
from tests.conftest import IdpCliRunner, _reset, free_port
from tests.factories import Factories
from tests.flows import Flow, csrf_token
from tests.journeys.test_outages import _add_member, _code_step, _registration
from tests.journeys.test_stateless_nodes import Alternating
from tests.servers import SmsGateway, SmtpServer, node_environment
from tests.timing import until

BOUND = 3.0
# Pages timed against BOUND while relays hang: with no other test loading the machine.
pytestmark = pytest.mark.alone


class BlackHole:
    """A server that accepts connections and never says a word (a hung relay or gateway)."""

    def __init__(self, port: int | None = None):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()


def worker_settings(settings: dict, port: int, **changes) -> dict:
    # Production's delivery, with short waits so the test does not sit out 10 s timeouts.
    return {**settings, "message_delivery": "worker", "mail_backend": "smtp",
            "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none",
            "smtp_timeout_seconds": 1, "message_retry_base_seconds": 1, **changes}


@pytest.fixture
def make_app(settings):
    built = []

    def make(port: int, **changes):
        app = create_app(worker_settings(settings, port, **changes))
        app.config["TESTING"] = True
        built.append(app)
        return app

    yield make
    for app in built:
        _reset(app)


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def ask_email_code(app):
    """A member at the code page asks for an email code: (the answer, seconds it took)."""
    db = app.extensions["idp"].database.session()
    make = Factories(app, db)
    flow = Flow(app.test_client(), "malakoff", make.client(), make.account())
    db.close()
    posted = flow.give_password(prompt=None)
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    choose = flow.http.get("/malakoff/login/code")
    return timed(lambda: flow.http.post("/malakoff/login/code", data={
        "channel": "email", "csrf_token": csrf_token(choose.data)}))


def register(app):
    _add_member(app)
    browser = app.test_client()
    page = browser.get("/malakoff/register")
    assert browser.post("/malakoff/register", data=_registration(page.data)).status_code == 303
    form = _code_step(app, browser.get("/malakoff/register/code").data)
    return timed(lambda: browser.post("/malakoff/register/code", data=form))


def statuses(app, channel: str | None = "email") -> list[tuple[str, str]]:
    """The messages' templates and statuses (of one channel, or all), oldest first."""
    query = select(Message.template, Message.status).order_by(Message.id)
    if channel is not None:
        query = query.where(Message.channel == channel)
    with app.extensions["idp"].database.session() as session:
        return [(row.template, row.status) for row in session.execute(query)]


def start_worker_process(settings: dict, port: int, tmp_path: Path, *, interval: int = 60,
                         **changes):
    """`idp outbox work` in a process of its own, listening: (the process, its log file). By
    default it polls every 60 s: only the notification can make it send within a test."""
    output = tmp_path / "worker.log"
    with output.open("wb") as log:
        worker = subprocess.Popen(  # noqa: S603 - the idp command of this environment
            [str(Path(sys.executable).with_name("idp")), "outbox", "work",
             "--interval", str(interval)],
            env=node_environment(worker_settings(settings, port, **changes)),
            stdout=log, stderr=subprocess.STDOUT)
    try:
        until(lambda: b"delivering queued messages" in output.read_bytes()
              or worker.poll() is not None, seconds=30, interval=0.05)
        assert worker.poll() is None, output.read_text()
    except BaseException:
        worker.terminate()
        worker.wait(timeout=15)
        raise
    time.sleep(0.3)  # past its first look at the queue
    return worker, output


def test_a_request_never_delivers_a_message_itself(make_app, smtp_server):
    """SMTP answers, but no worker runs: the page queues the code and says it is delayed."""
    app = make_app(smtp_server.port)
    (answer, elapsed) = ask_email_code(app)
    assert answer.status_code == 303 and "delayed=1" in answer.headers["Location"]
    assert elapsed < BOUND
    assert smtp_server.inbox == []
    assert statuses(app) == [("otp_code", "pending")]

    result = IdpCliRunner(app).invoke(args=["outbox", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert len(smtp_server.inbox) == 1
    assert smtp_server.quits == [smtp_server.inbox[0].peer]  # its session ended as it stopped
    assert statuses(app) == [("otp_code", "sent")]


def test_a_hung_smtp_server_never_holds_a_page_and_its_mail_leaves_once_it_answers(make_app):
    hole = BlackHole()
    # Half the default bound: a request that waited on the relay would take this long.
    app = make_app(hole.port, smtp_timeout_seconds=5)
    worker = DemoWorker(app, interval=0.2).start()
    smtp = SmtpServer(port=hole.port)
    try:
        registered, took = register(app)
        assert registered.status_code == 303
        assert took < BOUND, took
        answer, took = ask_email_code(app)
        assert answer.status_code == 303 and "delayed=1" in answer.headers["Location"]
        assert took < BOUND, took
        # The worker tried and is waiting to try again.
        until(lambda: hole.accepted, seconds=15, interval=0.05)
        assert all(status == "pending" for _template, status in statuses(app))

        hole.close()
        smtp.start()  # the relay answers again, on the same port
        until(lambda: len(smtp.inbox) == 2, seconds=15, interval=0.05)
        time.sleep(1.5)  # retries a second apart: long enough for a duplicate to show
    finally:
        worker.stop()
        smtp.stop()
    assert [status for _template, status in statuses(app)] == ["sent", "sent"]
    assert len(smtp.inbox) == 2, "each message exactly once"
    assert [mail.recipients for mail in smtp.inbox].count(["jp.dupont@example.org"]) == 1


@pytest.mark.server
def test_under_the_production_server_hung_relays_hold_no_page_and_lose_no_message(
        make_app, settings, provider_nodes, tmp_path):
    """Production's shape: the provider under its server (one worker, one thread) and `idp
    outbox work` beside it, with an SMTP relay that accepts and never answers and an SMS gateway
    that takes the request and never answers. Every page answers within the bound; once the
    relays answer, every message leaves, each email once."""
    if not settings["database_url"].startswith("postgresql"):
        pytest.skip("the production server's nodes and workers share PostgreSQL")
    hole, gateway = BlackHole(), SmsGateway()
    gateway.delay = 600
    # A request that waited on a relay would take this long: more than the bound.
    relays = {"sms_backend": "http", "sms_gateway_url": gateway.url, "smtp_timeout_seconds": 4,
              "sms_gateway_timeout_seconds": 4}
    app = make_app(hole.port, **relays)
    _add_member(app)
    with app.extensions["idp"].database.session() as db:
        make = Factories(app, db)
        rp, account = make.client(), make.account()
    node = provider_nodes(node_environment(worker_settings(settings, hole.port, **relays),
                                           cookie_secure=False))
    # Its retries are due within seconds (message_retry_base_seconds=1): it looks every second.
    worker, output = start_worker_process(settings, hole.port, tmp_path, interval=1, **relays)
    smtp = SmtpServer(port=hole.port)
    try:
        browser = Alternating([node.url], app)  # a browser (tests.flows) of the one node
        took = []

        def page(method: str, path: str, **options):
            answer, elapsed = timed(lambda: browser.open(method, path, **options))
            took.append((path, elapsed))
            assert answer.status_code < 500, (path, answer.status_code)
            return answer

        form = _registration(page("GET", "/malakoff/register").data)
        assert page("POST", "/malakoff/register", data=form).status_code == 303
        step = page("GET", "/malakoff/register/code").data
        assert page("POST", "/malakoff/register/code",
                    data=_code_step(app, step)).status_code == 303
        flow = Flow(browser, "malakoff", rp, account)
        assert flow.give_password(prompt=None).headers["Location"].endswith("/malakoff/login/code")
        for channel in ("email", "sms"):
            choose = page("GET", "/malakoff/login/code")
            sent = page("POST", "/malakoff/login/code",
                        data={"channel": channel, "csrf_token": csrf_token(choose.data)})
            assert sent.status_code == 303, channel
            if channel == "email":  # the next channel's code may only be asked after a while
                browser.session.cookies.clear()
                flow = Flow(browser, "malakoff", rp, account)
                flow.give_password(prompt=None)
        page("GET", "/malakoff/jwks")
        assert max(elapsed for _path, elapsed in took) < BOUND, took
        # The worker process is the one waiting on the relays.
        until(lambda: hole.accepted and gateway.requests, seconds=20, interval=0.05)
        assert smtp.inbox == []

        hole.close()
        smtp.start()  # the relay answers again, on the same port
        gateway.delay = 0
        gateway.release.set()
        until(lambda: all(status == "sent" for _template, status in statuses(app, None)),
              seconds=60, interval=0.05)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        smtp.stop()
        gateway.close()
    emails = [template for template, _status in statuses(app)]
    assert sorted(emails) == ["activation", "otp_code"], output.read_text()
    assert len(smtp.inbox) == len(emails), "each email once"
    texts = {request.body["text"] for request in gateway.requests}
    assert len(texts) == len(statuses(app, "sms")) == 2, "the registration's code and the sign-in's"


def test_the_worker_in_process_sends_a_code_while_the_page_waits(make_app, smtp_server):
    """The demo's way: a worker thread, woken by the commit (30 s between its polls). The page
    waits for the code's email up to 5 s here (1 s by default): on a machine busy with other
    work, sending it has taken more than a second; a worker left to its polls would take 30."""
    app = make_app(smtp_server.port, message_sent_wait_ms=5000, smtp_timeout_seconds=5)
    worker = DemoWorker(app, interval=30).start()
    try:
        time.sleep(0.2)  # its first look at the (empty) queue is done: now it waits
        answer, took = ask_email_code(app)
    finally:
        worker.stop()
    assert answer.status_code == 303 and "delayed" not in answer.headers["Location"]
    assert took < 5
    assert len(smtp_server.inbox) == 1
    assert statuses(app) == [("otp_code", "sent")]


def test_a_worker_process_is_woken_by_postgresql_at_the_commit(make_app, settings, smtp_server,
                                                              tmp_path):
    if not settings["database_url"].startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY wakes workers in other processes on PostgreSQL only")
    app = make_app(smtp_server.port)
    worker, output = start_worker_process(settings, smtp_server.port, tmp_path)
    try:
        answer, _took = ask_email_code(app)
        assert answer.status_code == 303 and "delayed" not in answer.headers["Location"], (
            output.read_text())
        assert len(smtp_server.inbox) == 1
        # A second member, a second wake-up: the first one did not use up the listener.
        again, _took = ask_email_code(app)
        assert "delayed" not in again.headers["Location"], output.read_text()
        assert len(smtp_server.inbox) == 2
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert worker.returncode == 0, output.read_text()
    assert [status for _template, status in statuses(app)] == ["sent", "sent"]
    # The second email went in the first one's session, ended (QUIT) as the worker stopped.
    first, second = smtp_server.inbox
    assert first.peer == second.peer
    assert smtp_server.quits == [first.peer]


def test_a_worker_process_answers_a_recovery_request_once_it_is_committed(make_app, settings,
                                                                         smtp_server, tmp_path):
    """The page records the request; the worker, woken at its commit, looks it up and sends."""
    if not settings["database_url"].startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY wakes workers in other processes on PostgreSQL only")
    app = make_app(smtp_server.port)
    with app.extensions["idp"].database.session() as db:
        account = Factories(app, db).account()
    worker, _output = start_worker_process(settings, smtp_server.port, tmp_path)
    try:
        browser = app.test_client()
        page = browser.get("/malakoff/forgot-password")
        answer = browser.post("/malakoff/forgot-password", data={
            "identifier": account.email, "csrf_token": csrf_token(page.data)})
        assert answer.status_code == 303 and statuses(app) == []  # nothing done in the request
        until(lambda: len(smtp_server.inbox) == 1, seconds=5, interval=0.05)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert smtp_server.inbox[0].recipients == [account.email]
    assert statuses(app) == [("password_reset", "sent")]


def ask_password_reset(app, email: str) -> None:
    """A member asks to reset their password: the page records a request for the worker."""
    browser = app.test_client()
    page = browser.get("/malakoff/forgot-password")
    answer = browser.post("/malakoff/forgot-password", data={
        "identifier": email, "csrf_token": csrf_token(page.data)})
    assert answer.status_code == 303


@pytest.fixture
def looks(monkeypatch) -> list[float]:
    """When the demo's worker (``DemoWorker``, the worker's loop in a thread) looked for the
    requests recorded for it: each call of its ``worker_tasks``."""
    calls: list[float] = []

    def counted(services, session):
        calls.append(time.monotonic())
        return worker_tasks(services, session)

    monkeypatch.setattr(demo_setup, "worker_tasks", counted)
    dispatch.BELL.wait(0)  # what earlier tests' commits rang in this process, no worker heard
    return calls


def test_the_worker_looks_for_recorded_requests_only_when_told_of_one(make_app, smtp_server, looks):
    """Most wake-ups are for a code's message: the worker then looks at the queue alone. A
    recorded request's wake-up, and each look no wake-up caused, also look for requests."""
    app = make_app(smtp_server.port)
    with app.extensions["idp"].database.session() as db:
        account = Factories(app, db).account()
    worker = DemoWorker(app, interval=30).start()
    try:
        until(lambda: len(looks) == 1, seconds=5, interval=0.01)  # its first look: everything
        for sent in (1, 2):
            ask_email_code(app)
            until(lambda sent=sent: len(smtp_server.inbox) == sent, seconds=5, interval=0.01)
        time.sleep(0.3)  # every wake-up those commits caused is over
        assert len(looks) == 1
        ask_password_reset(app, account.email)
        until(lambda: len(smtp_server.inbox) == 3, seconds=5, interval=0.01)
        # One look, or two in-process on PostgreSQL: the bell and the notification each wake it.
        assert len(looks) in (2, 3)
    finally:
        worker.stop()
    assert [template for template, _status in statuses(app)] == ["otp_code", "otp_code", "password_reset"]


def test_the_worker_looks_for_everything_when_its_interval_runs_out(make_app, smtp_server, looks):
    worker = DemoWorker(make_app(smtp_server.port), interval=0.2).start()
    try:
        until(lambda: len(looks) >= 3, seconds=5, interval=0.01)
    finally:
        worker.stop()


def test_the_smtp_timeout_bounds_an_attempt(settings):
    hole = BlackHole()
    try:
        sender = SmtpEmailSender.from_settings(load_settings(
            worker_settings(settings, hole.port, smtp_timeout_seconds=1)))
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            sender.send("jeanne.martin@example.org", "Sujet", "Texte", None)
        assert time.monotonic() - started < 2
    finally:
        hole.close()


def test_the_gateway_timeout_bounds_an_attempt(settings):
    hole = BlackHole()
    try:
        sender = HttpSmsSender.from_settings(load_settings({
            **settings, "sms_backend": "http", "sms_gateway_timeout_seconds": 1,
            "sms_gateway_url": f"http://127.0.0.1:{hole.port}/v1/sms"}))
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            sender.send("+33612345678", "Votre code : 123456")
        assert time.monotonic() - started < 2
        sender.close()
    finally:
        hole.close()


def test_an_unused_port_is_refused_quickly(settings):
    """The control for the bounds above: nothing listening fails at once, not after them."""
    sender = SmtpEmailSender.from_settings(load_settings(worker_settings(settings, free_port())))
    with pytest.raises(DeliveryError, match="cannot reach"):
        sender.send("jeanne.martin@example.org", "Sujet", "Texte", None)

"""JSON log lines, request ids and proxy headers (idp.logs, IDP_TRUSTED_PROXIES)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from idp import create_app, logs
from idp.events import LOGIN_FAILURE, AuditEvent
from idp.logs import JsonFormatter
from tests.conftest import _reset
from tests.factories import Factories
from tests.flows import Flow
from tests.timing import until


@pytest.fixture
def lines():
    """The lines the provider's loggers write while the test runs, as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("idp")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("text", ['quote " inside', "back\\slash", "new\nline", "control \x01",
                                  "accents éà"])
def test_every_record_is_one_json_line(text):
    record = logging.LogRecord("idp.test", logging.WARNING, __file__, 1, "said %s", (text,), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == f"said {text}"
    assert entry["level"] == "WARNING" and entry["logger"] == "idp.test"
    assert entry["time"].endswith("+00:00")
    assert "request_id" not in entry  # outside a request


def test_an_exception_is_logged_with_its_type_and_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("idp.test", logging.ERROR, __file__, 1, "failed", (), True)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["error"] == "ValueError" and "Traceback" in entry["traceback"]


def test_each_request_gets_an_id_echoed_and_logged_once(client, lines):
    response = client.get("/malakoff/.well-known/openid-configuration?login_hint=secret@example.org")
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    (entry,) = [e for e in lines() if e["logger"] == "idp.request"]
    assert entry["request_id"] == request_id
    assert entry["path"] == "/malakoff/.well-known/openid-configuration"
    assert entry["tenant"] == "malakoff" and entry["method"] == "GET" and entry["status"] == 200
    assert entry["endpoint"] == "oidc_api.discovery"
    assert isinstance(entry["duration_ms"], float)
    assert client.get("/healthz").headers["X-Request-ID"] != request_id


def test_a_server_process_gathering_less_logs_the_same_lines(client, lines, monkeypatch):
    """The production server's workers have the logging module leave out what the lines never
    show (``gather_only_what_lines_hold``): each line keeps all its fields."""
    client.get("/malakoff/jwks", headers={"X-Request-ID": "abc"})
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # put back after the test
    logs.gather_only_what_lines_hold()
    client.get("/malakoff/jwks", headers={"X-Request-ID": "abc"})
    before, after = [e for e in lines() if e["logger"] == "idp.request"]
    assert logging._srcfile is None and not logging.logThreads
    assert before.keys() == after.keys()
    assert {key: before[key] for key in before if key not in ("time", "duration_ms", "request_id")} == {
        key: after[key] for key in after if key not in ("time", "duration_ms", "request_id")}


def test_a_document_read_before_the_application_is_logged_as_the_application_logs(client, lines):
    """Discovery and JWKS are answered before the application (idp.web.lane); with a
    query string the application answers: both log the same line."""
    answered = [client.get("/miel/jwks"), client.get("/miel/jwks", query_string={"x": "1"})]
    logged = [e for e in lines() if e["logger"] == "idp.request"]
    assert [e["request_id"] for e in logged] == [r.headers["X-Request-ID"] for r in answered]
    for entry in logged:
        assert {key: entry[key] for key in ("tenant", "method", "path", "status", "endpoint",
                                            "message")} == {
            "tenant": "miel", "method": "GET", "path": "/miel/jwks", "status": 200,
            "endpoint": "oidc_api.jwks", "message": "GET /miel/jwks 200"}


def test_unknown_tenants_and_urls_still_get_an_id(client, lines):
    for url in ("/nowhere/authorize", "/no/such/page"):
        response = client.get(url)
        assert response.status_code == 404 and response.headers["X-Request-ID"]
    # Labelled by route, whatever was asked: an unknown tenant's authorize is still that route.
    assert [e["endpoint"] for e in lines() if e["logger"] == "idp.request"] == [
        "oidc.authorize", "unmatched"]


def test_an_incoming_request_id_is_ignored_without_a_trusted_proxy(client):
    response = client.get("/healthz", headers={"X-Request-ID": "from-the-client-1234"})
    assert response.headers["X-Request-ID"] != "from-the-client-1234"


@pytest.mark.parametrize(("sent", "kept"), [
    ("9f1c2e4a8b7d6c5e4f3a2b1c0d9e8f7a", True),
    ("req_2026-03-14:node.1", True),
    ("has space", False),
    ("-starts-with-a-dash", False),
    ("x" * 129, False),
    ("é-accented", False),
])
def test_behind_a_trusted_proxy_a_sane_request_id_is_kept(settings, sent, kept):
    app = create_app({**settings, "trusted_proxies": 1})
    response = app.test_client().get("/healthz", headers={"X-Request-ID": sent})
    assert (response.headers["X-Request-ID"] == sent) is kept
    app.extensions["idp"].database.engine.dispose()


@pytest.mark.parametrize(("trusted", "recorded"), [(0, "127.0.0.1"), (1, "198.51.100.7")])
def test_the_client_address_comes_from_a_trusted_proxy_only(settings, trusted, recorded):
    app = create_app({**settings, "trusted_proxies": trusted})
    db = app.extensions["idp"].database.session()
    factories = Factories(app, db)
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.66, 198.51.100.7"
    flow = Flow(client, "malakoff", factories.client(), factories.account())
    assert flow.give_password("Wrong-password-1!").status_code == 401
    failure = db.scalar(select(AuditEvent).where(AuditEvent.tag == LOGIN_FAILURE))
    assert failure.ip == recorded
    db.close()
    _reset(app)


@pytest.fixture
def request_lines(monkeypatch):
    """``idp.request``'s lines going to one JSON stream only, as the production server sets
    them up (``logs.dict_config``): the stream, and the logger. Pytest gives the logger its
    own handlers as each test starts: ``alone`` takes them off. The lines wait to be written
    until the test writes them (``logs.REQUEST_LINES.flush``)."""
    monkeypatch.setattr(logs, "REQUEST_LINES", logs.RequestLines(interval=3600))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("idp.request")
    saved = logger.handlers, logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield stream, logger, lambda: setattr(logger, "handlers", [handler])
    logger.handlers, logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


FIELDS = {"request_id": "f" * 32, "tenant": "malakoff", "method": "POST", "path": "/malakoff/revoke"}


def test_a_request_line_to_a_lone_json_stream_is_the_line_its_record_would_make(request_lines,
                                                                                monkeypatch):
    stream, logger, alone = request_lines
    alone()
    with monkeypatch.context() as patched:
        # Written straight to the stream: no record is made.
        patched.setattr(logging.Logger, "makeRecord", lambda *_a, **_k: pytest.fail("a record was made"))
        logs.log_request("oidc_api.revoke", 200, 0.00123, FIELDS)
        logs.REQUEST_LINES.flush()
    direct = json.loads(stream.getvalue())
    # With a second destination the line goes through a record, to both.
    logger.addHandler(logging.NullHandler())
    logs.log_request("oidc_api.revoke", 200, 0.00123, FIELDS)
    recorded = json.loads(stream.getvalue().splitlines()[1])
    assert direct.pop("time")[:10] == recorded.pop("time")[:10]
    assert direct == recorded == {
        "level": "INFO", "logger": "idp.request", "message": "POST /malakoff/revoke 200", **FIELDS,
        "status": 200, "duration_ms": 1.2, "endpoint": "oidc_api.revoke"}


@pytest.mark.parametrize("setting", ["filter", "formatter", "level"])
def test_a_request_line_goes_through_a_record_where_the_set_up_asks_for_one(request_lines, setting):
    """A filter sees every line, another formatter formats it, a level above INFO keeps it out."""
    stream, logger, alone = request_lines
    alone()
    (handler,) = logger.handlers
    seen = []
    if setting == "filter":
        logger.addFilter(lambda record: seen.append(record) or True)
    elif setting == "formatter":
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    else:
        handler.setLevel(logging.WARNING)
    try:
        logs.log_request("oidc_api.revoke", 200, 0.001, FIELDS)
    finally:
        logger.filters.clear()
    if setting == "filter":
        assert [record.getMessage() for record in seen] == ["POST /malakoff/revoke 200"]
        assert json.loads(stream.getvalue())["status"] == 200
    elif setting == "formatter":
        assert stream.getvalue() == "INFO POST /malakoff/revoke 200\n"
    else:
        assert stream.getvalue() == ""


def test_a_request_line_that_cannot_be_written_is_reported_not_raised(request_lines):
    stream, logger, alone = request_lines
    alone()
    (handler,) = logger.handlers
    reported = []
    stream.close()  # writing raises ValueError
    handler.handleError = reported.append
    logs.log_request("oidc_api.revoke", 200, 0.001, FIELDS)
    logs.log_request("oidc_api.revoke", 400, 0.001, FIELDS)
    logs.REQUEST_LINES.flush()
    assert [record.getMessage() for record in reported] == ["POST /malakoff/revoke 200",
                                                            "POST /malakoff/revoke 400"]


def _requests_counted(endpoint: str) -> float:
    return REGISTRY.get_sample_value("idp_http_requests_total",
                                     {"endpoint": endpoint, "method": "POST", "status": "200"}) or 0.0


def test_request_lines_wait_and_are_written_together_and_measured_then(request_lines, monkeypatch):
    stream, _logger, alone = request_lines
    alone()
    (handler,) = logging.getLogger("idp.request").handlers
    writes = []
    write = stream.write
    monkeypatch.setattr(stream, "write", lambda text: writes.append(text) or write(text))
    before = _requests_counted("oidc_api.introspect")
    for number in range(3):
        logs.log_request("oidc_api.introspect", 200, 0.001, {**FIELDS, "request_id": str(number)})
    # Handed over only: neither written nor counted yet.
    assert stream.getvalue() == "" and _requests_counted("oidc_api.introspect") == before
    logs.REQUEST_LINES.flush()
    assert len(writes) == 1, "one write for the three lines"
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["0", "1", "2"]
    assert _requests_counted("oidc_api.introspect") == before + 3
    assert handler.stream is stream


def test_request_lines_are_written_by_a_thread_of_their_own_within_the_interval(request_lines, monkeypatch):
    stream, _logger, alone = request_lines
    alone()
    monkeypatch.setattr(logs, "REQUEST_LINES", logs.RequestLines(interval=0.01))
    logs.log_request("oidc_api.revoke", 200, 0.001, FIELDS)
    until(lambda: stream.getvalue(), seconds=5, interval=0.005)
    assert json.loads(stream.getvalue())["message"] == "POST /malakoff/revoke 200"
    # It goes on: a line handed over later is written too, without a flush.
    logs.log_request("oidc_api.revoke", 404, 0.001, FIELDS)
    until(lambda: len(stream.getvalue().splitlines()) >= 2, seconds=5, interval=0.005)
    assert json.loads(stream.getvalue().splitlines()[1])["status"] == 404


def test_a_forked_process_writes_its_own_request_lines(request_lines, monkeypatch):
    """A server's worker is forked from a process that has written lines: it starts its own
    writer, as the parent's thread is not in the child."""
    _stream, _logger, alone = request_lines
    alone()
    monkeypatch.setattr(logs, "REQUEST_LINES", logs.RequestLines(interval=0.01))
    reading, writing = os.pipe()
    (handler,) = logging.getLogger("idp.request").handlers
    logs.log_request("oidc_api.revoke", 200, 0.001, FIELDS)  # the parent's writer starts
    logs.REQUEST_LINES.flush()
    pid = os.fork()
    if pid == 0:  # the child: its lines to the pipe, written by its own thread
        code = 1
        try:
            handler.setStream(os.fdopen(writing, "w"))
            logs.log_request("oidc_api.revoke", 201, 0.001, FIELDS)
            time.sleep(0.5)
            code = 0
        finally:
            os._exit(code)
    os.close(writing)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(reading) as pipe:
        written = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(written)["status"] == 201


def test_a_request_line_that_cannot_be_made_is_reported_and_the_others_written(request_lines, monkeypatch):
    stream, logger, alone = request_lines
    alone()
    (handler,) = logger.handlers
    reported = []
    handler.handleError = reported.append
    measure = logs.metrics.observe_request

    def failing(endpoint, *args):
        if endpoint == "oidc_api.broken":
            raise OSError("the metrics file is gone")
        measure(endpoint, *args)

    monkeypatch.setattr(logs.metrics, "observe_request", failing)
    logs.log_request("oidc_api.broken", 200, 0.001, FIELDS)
    logs.log_request("oidc_api.revoke", 200, 0.001, FIELDS)
    logs.REQUEST_LINES.flush()
    assert [record.getMessage() for record in reported] == ["POST /malakoff/revoke 200"]
    assert [json.loads(line)["endpoint"] for line in stream.getvalue().splitlines()] == ["oidc_api.revoke"]

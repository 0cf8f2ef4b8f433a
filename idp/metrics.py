"""Prometheus metrics: what the provider counts, and the exposition served at /metrics.

Counters of security outcomes (sign-ins, one-time codes, registrations) are
derived from the audit events a transaction commits, so a rolled-back change
is never counted; delivery outcomes and request latencies are counted where
they happen. Queue sizes (review queue, message queue) are read from the
database at each scrape, so every node reports the same shared values.

Under the production server with several workers (``idp.web.server``), set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory writable by the workers
(wiped at each start): each worker then writes its counters there and a
scrape of any worker adds them all up
(prometheus_client's multiprocess mode). Without it, each process reports its
own counters, which is right for a single process (the demo, one worker).

This module does not import Flask: the web layer calls ``observe_request`` and
``exposition``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from idp import events
from idp.accounts.models import RegistrationRequest
from idp.channels.models import Message
from idp.db import Database, utcnow

SIGN_INS = Counter(
    "idp_sign_ins", "Password checks at sign-in, by tenant and outcome (success, failure, locked).",
    ["tenant", "outcome"])
OTP_SENT = Counter(
    "idp_otp_codes_sent", "One-time codes issued at sign-in, by tenant and channel (email, sms).",
    ["tenant", "channel"])
OTP_FAILED = Counter(
    "idp_otp_codes_failed",
    "One-time codes refused at sign-in, by tenant, channel and reason (invalid, expired, locked).",
    ["tenant", "channel", "reason"])
REGISTRATIONS = Counter(
    "idp_registrations",
    "Registrations matched against the registry, by tenant and outcome (accepted, review, miss; "
    "limited: refused unchecked, past the failed matches allowed on the member number or NIR).",
    ["tenant", "outcome"])
DELIVERIES = Counter(
    "idp_message_deliveries",
    "Attempts at delivering an email or SMS, by channel, template and outcome "
    "(sent; delayed: retried later; failed: given up; expired: a code no longer valid, not sent).",
    ["channel", "template", "outcome"])
REQUESTS = Counter(
    "idp_http_requests", "HTTP requests, by endpoint, method and status.",
    ["endpoint", "method", "status"])
LATENCY = Histogram(
    "idp_http_request_duration_seconds", "Time to answer an HTTP request, by endpoint and method.",
    ["endpoint", "method"],
    # Argon2 makes sign-in pages take tens to hundreds of milliseconds.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

_SIGN_IN_OUTCOMES = {
    events.LOGIN_SUCCESS: "success", events.LOGIN_FAILURE: "failure", events.LOGIN_LOCKED: "locked",
}
_REGISTRATION_OUTCOMES = {
    events.REGISTRATION_ACCEPTED: "accepted", events.REGISTRATION_REVIEW: "review",
    events.REGISTRATION_MISS: "miss", events.REGISTRATION_LIMITED: "limited",
}
_OTP_REASONS = {"OtpInvalid": "invalid", "OtpExpired": "expired", "OtpLocked": "locked"}


def count_event(recorded: Mapping[str, Any]) -> None:
    """Count one committed audit event (``events.record_event``'s values) in the counter its tag
    feeds, if any."""
    tag = recorded["tag"]
    tenant = recorded["tenant"] or "-"
    data = recorded["data"] or {}
    channel = str(data.get("channel") or "-")
    if tag in _SIGN_IN_OUTCOMES:
        SIGN_INS.labels(tenant, _SIGN_IN_OUTCOMES[tag]).inc()
    elif tag in _REGISTRATION_OUTCOMES:
        REGISTRATIONS.labels(tenant, _REGISTRATION_OUTCOMES[tag]).inc()
    elif tag == events.OTP_SENT:
        OTP_SENT.labels(tenant, channel).inc()
    elif tag == events.OTP_FAILURE:
        OTP_FAILED.labels(tenant, channel, _OTP_REASONS.get(str(data.get("reason")), "other")).inc()


def count_committed_events(factory: sessionmaker) -> None:
    """Count the audit events of every transaction of ``factory``'s sessions once it commits."""

    @event.listens_for(factory, "after_commit")
    def count(session: Session) -> None:
        for recorded in session.info.pop(events.RECORDED, []):
            count_event(recorded)

    @event.listens_for(factory, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop(events.RECORDED, None)


# The two request metrics' series, by endpoint, method and status, as ``labels`` gives them:
# it checks its arguments and takes a lock at each call (3.6 of the 6 µs a request's
# metrics cost). As many entries as the metrics have series.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request. ``endpoint`` is the route's name, never the raw URL."""
    key = (endpoint, method, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES.setdefault(key, (REQUESTS.labels(endpoint, method, str(status)),
                                          LATENCY.labels(endpoint, method)))
    count, latency = series
    count.inc()
    latency.observe(seconds)


class QueueCollector(Collector):
    """Review-queue and message-queue sizes, read from the database at each scrape."""

    def __init__(self, database: Database):
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("idp_metrics_database_up",
                               "1 when the queue gauges below could be read from the database.")
        review = GaugeMetricFamily("idp_review_queue_size",
                                   "Registration requests waiting for a decision, by tenant.",
                                   labels=["tenant"])
        backlog = GaugeMetricFamily(
            "idp_message_queue_backlog",
            "Emails and SMS not delivered, by channel and status (pending: will be retried; "
            "failed: given up, see `idp outbox list --status failed`).",
            labels=["channel", "status"])
        oldest = GaugeMetricFamily("idp_message_queue_oldest_pending_seconds",
                                   "Age of the oldest pending email or SMS (0 when none).")
        session = self.database.session()
        try:
            reviews = session.execute(
                select(RegistrationRequest.tenant, func.count())
                .where(RegistrationRequest.status == "pending")
                .group_by(RegistrationRequest.tenant)).all()
            messages = session.execute(
                select(Message.channel, Message.status, func.count())
                .where(Message.status.in_(("pending", "failed")))
                .group_by(Message.channel, Message.status)).all()
            first = session.scalar(select(func.min(Message.created_at))
                                   .where(Message.status == "pending"))
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        finally:
            session.close()
        up.add_metric([], 1)
        for tenant, count in reviews:
            review.add_metric([tenant], count)
        for channel, status, count in messages:
            backlog.add_metric([channel, status], count)
        age = (utcnow() - first) if first is not None else timedelta()
        oldest.add_metric([], max(age.total_seconds(), 0.0))
        yield from (up, review, backlog, oldest)


def _counters() -> CollectorRegistry:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def exposition(database: Database) -> bytes:
    """The text exposition: counters (every worker's, in multiprocess mode) and queue gauges."""
    queues = CollectorRegistry()
    queues.register(QueueCollector(database))
    return generate_latest(_counters()) + generate_latest(queues)

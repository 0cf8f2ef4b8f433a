"""The delivery loop of ``idp outbox work`` (and of the demo's worker thread).

Between two looks at the queue the worker waits for a wake-up, at most its interval:
a commit that queued messages wakes it (PostgreSQL ``NOTIFY``, see
``idp.channels.dispatch``; on SQLite the in-process bell), so that a code leaves
within a second; the interval is the fallback that finds what no wake-up announced
(retries whose backoff has passed, a notification lost while the worker was
reconnecting). The requests pages record for it (``dispatch.note_work``) are looked
for when a notification announced one, and at the looks no notification caused: not
after each message, most of its wake-ups, whose look for them would find nothing.

Why PostgreSQL's notifications rather than Redis: the message and its wake-up are
in one transaction (a rolled-back change wakes nobody, a committed one always
does), the worker needs nothing but the database it already reads, and a Redis
outage cannot delay mail. The cost is one more connection per worker, which must
reach PostgreSQL directly or through a pooler in session mode (LISTEN does not
survive transaction pooling).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from idp.channels import dispatch
from idp.channels.dispatch import Wakeup
from idp.channels.services import Batch, Messages

log = logging.getLogger(__name__)

# The longest a wait runs before checking whether the worker was told to stop.
STOP_CHECK_SECONDS = 0.25


class Wakeups:
    """What a worker waits on: notifications from PostgreSQL, the in-process bell otherwise.

    The listening connection is opened lazily and opened again after any failure;
    while it cannot be, the worker simply waits out its interval (a database outage
    delays messages; it never stops the worker).
    """

    def __init__(self, engine: Engine, connect_args: dict[str, Any] | None = None):
        self.engine = engine
        self.connect_args = connect_args or {}
        self.listens = engine.dialect.name == "postgresql"
        self.connection: psycopg.Connection | None = None

    def listen(self) -> None:
        """Start listening now (before the first look at the queue: nothing committed after
        that look goes unannounced). Failures are left for ``wait`` to retry."""
        if self.listens and self.connection is None:
            try:
                self._connect()
            except (psycopg.Error, OSError) as exc:
                log.warning("cannot listen for new messages (%s); polling only",
                            type(exc).__name__)

    def _connect(self) -> None:
        _cargs, params = self.engine.dialect.create_connect_args(self.engine.url)
        params = {**params, **self.connect_args}
        params.pop("options", None)  # no statement bound: a LISTEN connection idles by design
        # A plain psycopg connection: the pool's bound every exchange, which waiting for a
        # notification is not.
        connection = psycopg.Connection.connect(**params, autocommit=True)
        try:
            connection.execute(f"LISTEN {dispatch.CHANNEL}")
        except BaseException:
            connection.close()
            raise
        self.connection = connection

    def wait(self, timeout: float, stop: threading.Event) -> Wakeup:
        """Wait up to ``timeout`` seconds for a wake-up or ``stop``; what ended the wait.

        Every notification already received is consumed with the one that woke us: the
        look that follows covers all of them.
        """
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            woken = self._woken(min(STOP_CHECK_SECONDS, remaining))
            if woken is not None:
                return woken
        return Wakeup.INTERVAL

    def _woken(self, timeout: float) -> Wakeup | None:
        rung = dispatch.BELL.wait(0)
        if rung is not None or not self.listens:
            return rung or dispatch.BELL.wait(timeout)
        if self.connection is None:
            self.listen()
            if self.connection is None:
                time.sleep(timeout)
                return None
        try:
            notes = list(self.connection.notifies(timeout=timeout, stop_after=1))
            if notes:
                notes += self.connection.notifies(timeout=0)
                return (Wakeup.ANYTHING if any(note.payload == dispatch.WORK_PAYLOAD for note in notes)
                        else Wakeup.MESSAGES)
        except (psycopg.Error, OSError) as exc:
            log.warning("lost the connection listening for new messages (%s); reconnecting",
                        type(exc).__name__)
            self.close()
        return None

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self.connection.close()
            self.connection = None


def run(messages: Messages, wakeups: Wakeups, stop: threading.Event, *, interval: float,
        batch: int, report: Callable[[Batch], None],
        on_database_error: Callable[[SQLAlchemyError], None],
        work: dispatch.Work | None = None) -> None:
    """Carry out what pages recorded for the worker (``work``, on the worker's session), deliver
    what is due, then wait for a wake-up or ``interval``, until ``stop`` is set. After a wake-up
    that announced only messages, the requests are not looked for (``Wakeup``)."""
    wakeups.listen()
    woken = Wakeup.INTERVAL
    try:
        while not stop.is_set():
            try:
                if work is not None and woken is not Wakeup.MESSAGES:
                    work(messages.session)
                result = messages.deliver_due(batch, should_stop=stop.is_set)
            except SQLAlchemyError as exc:
                messages.session.rollback()
                on_database_error(exc)
                stop.wait(interval)
                woken = Wakeup.INTERVAL
                continue
            if any(result):
                report(result)
            # A full batch means more may be due: look again at once (at the queue only; a
            # request recorded meanwhile has its notification waiting for the next wait).
            woken = wakeups.wait(interval, stop) if sum(result) < batch else Wakeup.MESSAGES
    finally:
        wakeups.close()

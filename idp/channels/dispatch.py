"""Messages are handed to the worker when the transaction that queued them commits.

``Messages.queue`` notes each message on its database session. On PostgreSQL it also
issues ``NOTIFY idp_messages`` in that transaction: PostgreSQL delivers it to the
listening workers (``idp.channels.worker``) only once the transaction has committed,
and drops it if it rolls back, so a worker is woken exactly when there is something new
for it to read. After the commit, the session's messages also ring an in-process bell,
which a worker running in the same process (the demo's, on SQLite) waits on.

Some pages queue no message but record a request for the worker to carry out after
them (``note_work``: a recovery request, which the worker looks up and answers with a
message or nothing), so that they do the same work whatever was asked. Its commit wakes
the worker the same way, its notification saying so (``WORK_PAYLOAD``); the worker carries
out such requests (the app's ``work``) before its look at the queue when it was told of one,
and at every look that no notification caused.

In the "worker" mode (``message_delivery``, the default and production's) nothing is
sent here: the page that queued a code asks ``Messages.delivered``, which waits a short
bounded time for the worker to report it sent. In the "inline" mode (tests,
single-process development) the session that queued messages also makes one attempt at
each once its transaction has ended (its connection back in the pool), on a session of
its own, and notes whether each went; what it recorded for the worker is carried out
first, on a session of its own, and the messages that makes are tried too. Either way a
rolled-back transaction sends nothing, and what is not delivered at once stays queued for
``idp outbox work``. Views and commands never send: they commit, or the request commits
for them (``idp.web.transactions``).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import TextClause, event, text
from sqlalchemy.orm import Session, sessionmaker

from idp.db import write

log = logging.getLogger(__name__)

# The PostgreSQL notification channel the workers LISTEN on. A message's notification has no
# payload; a request recorded for the worker (``note_work``) has this one.
CHANNEL = "idp_messages"
WORK_PAYLOAD = "work"

OUTGOING = "idp.messages.outgoing"
DELIVERED = "idp.messages.delivered"
COMMITTED = "idp.messages.committed"
DISPATCHES = "idp.messages.dispatches"
READY = "idp.messages.ready"
WORK = "idp.messages.work"
WORK_READY = "idp.messages.work-ready"

# work(session) carries out the requests recorded for the worker, on ``session``, committing
# each; it returns the messages it queued.
Work = Callable[[Session], list]


class Wakeup(enum.Enum):
    """What ended a worker's wait (``idp.channels.worker``), hence what its next look covers."""

    # Its interval ran out (or it was told to stop): everything.
    INTERVAL = "interval"
    # Messages only were announced: the queue.
    MESSAGES = "messages"
    # A request recorded for the worker was announced: the requests, then the queue.
    ANYTHING = "anything"


class Bell:
    """Rung after every commit that queued messages or recorded work, for a worker in the same
    process, saying which as PostgreSQL's notifications do.

    Workers in other processes are woken by PostgreSQL's NOTIFY instead; this one
    covers SQLite (the demo), which has no notifications.
    """

    def __init__(self) -> None:
        self._rung = threading.Event()
        self._lock = threading.Lock()
        self._work = False

    def ring(self, *, work: bool) -> None:
        with self._lock:
            self._work = self._work or work
            self._rung.set()

    def wait(self, timeout: float) -> Wakeup | None:
        """Wait up to ``timeout`` seconds for a ring; what the rings since the last wait were for
        (and reset), None when there was none."""
        if not self._rung.wait(timeout):
            return None
        with self._lock:
            self._rung.clear()
            work, self._work = self._work, False
        return Wakeup.ANYTHING if work else Wakeup.MESSAGES


BELL = Bell()


def dispatch_at_commit(session: Session) -> Session:
    """Make ``session`` (a request's or a command's) try what it queued when it commits, in the
    "inline" mode. Other sessions (the worker's, a test's own) leave messages to the worker."""
    session.info[DISPATCHES] = True
    return session


_NOTIFY_MESSAGES = text(f"NOTIFY {CHANNEL}")
_NOTIFY_WORK = text(f"NOTIFY {CHANNEL}, '{WORK_PAYLOAD}'")


def note_queued(session: Session, message) -> None:
    _notify(session, _NOTIFY_MESSAGES)
    session.info.setdefault(OUTGOING, []).append(message)


def note_work(session: Session) -> None:
    """A request for the worker to carry out was added to ``session``'s transaction: its commit
    wakes the worker as a message's does, and tells it to look for requests."""
    _notify(session, _NOTIFY_WORK)
    session.info[WORK] = True


def _notify(session: Session, notification: TextClause) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Transactional: PostgreSQL sends it at commit, once however many of the same were issued.
        # Prepared, as the message's own statement is (``idp.db.write``).
        write(session, notification, {})


def delivered(session: Session, message) -> bool | None:
    """True or False when ``message`` was tried at commit (inline mode), None otherwise."""
    return session.info.get(DELIVERED, {}).get(message.id)


def committed_at(session: Session, message) -> float | None:
    """When (``time.monotonic``) the transaction that queued ``message`` committed; None before."""
    return session.info.get(COMMITTED, {}).get(message.id)


def install(factory: sessionmaker,
            attempt: Callable[[Session, list], dict[int, bool]] | None = None,
            work: Work | None = None) -> None:
    """Hand what sessions of ``factory`` queued to the worker when they commit.

    With ``attempt`` (the "inline" mode), also try each message once after the commit of a
    session marked by ``dispatch_at_commit``: ``attempt(session, messages)`` tries each on
    the given fresh session and returns {message id: delivered}. If that session recorded
    requests for the worker (``note_work``), ``work`` carries them out first, on a fresh
    session, and the messages it queued are tried too.
    """

    @event.listens_for(factory, "after_commit")
    def committed(session: Session) -> None:
        outgoing = session.info.pop(OUTGOING, None) or []
        recorded = session.info.pop(WORK, False)
        if not outgoing and not recorded:
            return
        now = time.monotonic()
        session.info.setdefault(COMMITTED, {}).update({message.id: now for message in outgoing})
        BELL.ring(work=recorded)
        if attempt is not None and session.info.get(DISPATCHES):
            session.info[READY] = outgoing
            session.info[WORK_READY] = recorded

    @event.listens_for(factory, "after_transaction_end")
    def dispatch(session: Session, transaction) -> None:
        # Once the transaction is over and its connection back in the pool: whatever
        # happens while sending (an error, an interruption) leaves it in a clean state.
        if attempt is None or transaction.parent is not None or READY not in session.info:
            return
        outgoing = list(session.info.pop(READY))
        recorded = session.info.pop(WORK_READY, False)
        try:
            if recorded and work is not None:
                with factory() as working:
                    outgoing += work(working)
            with factory() as delivery:
                session.info.setdefault(DELIVERED, {}).update(attempt(delivery, outgoing))
        except Exception as exc:  # the change is committed: its messages wait for the worker
            log.warning("immediate delivery deferred to the worker: %s", type(exc).__name__)

    @event.listens_for(factory, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop(OUTGOING, None)
        session.info.pop(WORK, None)

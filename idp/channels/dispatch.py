"""Messages leave once the transaction that queued them has committed, and never before.

``Messages.queue`` notes each message on its database session; once that session's
transaction has committed and ended (its connection back in the pool), this hook makes
one delivery attempt per message on a session of its own, and notes whether each went, so the
page can say "sent" or "delayed" (``Messages.delivered``). A rolled-back
transaction sends nothing. What the attempt could not deliver stays queued for
``idp outbox work``. Views and commands never send: they commit, or the request
commits for them (``idp.web.transactions``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

OUTGOING = "idp.messages.outgoing"
DELIVERED = "idp.messages.delivered"
DISPATCHES = "idp.messages.dispatches"
READY = "idp.messages.ready"


def dispatch_at_commit(session: Session) -> Session:
    """Make ``session`` (a request's or a command's) send what it queued when it commits.

    Other sessions (the worker's, a test's own) leave messages to explicit delivery.
    """
    session.info[DISPATCHES] = True
    return session


def note_queued(session: Session, message) -> None:
    session.info.setdefault(OUTGOING, []).append(message)


def delivered(session: Session, message) -> bool | None:
    """True when ``message`` went out at commit, False when it is delayed, None before the commit."""
    return session.info.get(DELIVERED, {}).get(message.id)


def install(factory: sessionmaker, attempt: Callable[[Session, list], dict[int, bool]]) -> None:
    """Dispatch after every commit of a session made by ``factory``.

    ``attempt(session, messages)`` tries each message once on the given fresh session and
    returns {message id: delivered}.
    """

    @event.listens_for(factory, "after_commit")
    def committed(session: Session) -> None:
        if session.info.get(DISPATCHES) and session.info.get(OUTGOING):
            session.info[READY] = session.info.pop(OUTGOING)

    @event.listens_for(factory, "after_transaction_end")
    def dispatch(session: Session, transaction) -> None:
        # Once the transaction is over and its connection back in the pool: whatever
        # happens while sending (an error, an interruption) leaves it in a clean state.
        if transaction.parent is not None or not session.info.get(READY):
            return
        outgoing = session.info.pop(READY)
        try:
            with factory() as delivery:
                session.info.setdefault(DELIVERED, {}).update(attempt(delivery, outgoing))
        except Exception as exc:  # the change is committed: its messages wait for the worker
            log.warning("immediate delivery deferred to the worker: %s", type(exc).__name__)

    @event.listens_for(factory, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop(OUTGOING, None)

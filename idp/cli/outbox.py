"""`idp outbox`: deliver queued emails, SMS and letters, list them, retry failed ones.

The queue is ``idp.channels.services.Messages``; these commands only drive it
and print what it did. Bodies are never printed (they carry one-time codes and
links) and recipients are masked.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import click

from idp.cli.common import (
    ROW_ID,
    CommandGroup,
    FiniteRange,
    LazyChoice,
    echo_json,
    echo_table,
    json_option,
    tenant_by_slug,
    tenant_option,
    transaction,
)

if TYPE_CHECKING:
    from idp.channels.models import Message
    from idp.channels.services import Batch, Messages

group = CommandGroup(
    "outbox",
    help=(
        "The queue of emails, SMS and letters. Pages and commands queue messages; "
        "`idp outbox work` (its own process in production, woken by each new "
        "message) delivers them, retrying with backoff until "
        "IDP_MESSAGE_MAX_ATTEMPTS, after which a message is 'failed' until an "
        "operator retries it."
    ),
)


def _messages() -> Messages:
    from idp.extensions import db, services

    return services().channels.messages(db())


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT; the previous handlers come back afterwards."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only; the caller stops us otherwise
        return

    def handle(signum, _frame):
        click.echo(f"{signal.Signals(signum).name} received: stopping after the current message",
                   err=True)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@group.command("work")
@click.option("--interval", type=FiniteRange(min=0.1), default=5.0, show_default=True,
              help="Longest wait between two looks at the queue; a new message wakes the "
                   "worker at once.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Messages handled per look at the queue.")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def work(interval: float, batch: int, once: bool) -> None:
    """Deliver queued messages until stopped (SIGTERM or Ctrl-C).

    Run it as its own process next to the web servers: pages never send, they
    queue (or record a recovery request, which it looks up first) and wake it
    (on PostgreSQL through LISTEN/NOTIFY, one more database connection per
    worker), and it also looks at the queue every --interval
    seconds for retries that are due. Several can run at once (on PostgreSQL
    each message is claimed by one of them). It stops cleanly between two
    messages: nothing is sent twice or lost. Logs are JSON lines on standard
    error, as the web servers' are.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from idp import logs
    from idp.channels import worker
    from idp.channels.worker import Wakeups
    from idp.db import connect_args, utcnow
    from idp.extensions import services
    from idp.wiring import worker_tasks

    logs.configure()
    messages = _messages()

    def work(session):
        return worker_tasks(services(), session)

    if once:
        try:
            work(messages.session)
            result = messages.deliver_due(batch)
        except SQLAlchemyError:
            messages.session.rollback()
            raise  # the error boundary says what to do (idp.cli.errors); nothing was lost
        finally:
            messages.email_sender.close()
        _report(result)
        return
    database = services().database
    wakeups = Wakeups(database.engine, connect_args(database.timeouts))

    def database_error(exc: SQLAlchemyError) -> None:
        click.echo(f"{_when(utcnow())} database error ({type(exc).__name__}); "
                   f"retrying in {interval:g} s", err=True)

    with _stop_on_signals() as stop:
        wakeups.listen()  # before saying we run: nothing committed from now on goes unannounced
        click.echo(f"delivering queued messages as they are queued (and every {interval:g} s); "
                   "SIGTERM or Ctrl-C stops")
        try:
            worker.run(messages, wakeups, stop, interval=interval, batch=batch, report=_report,
                       on_database_error=database_error, work=work)
        finally:
            messages.email_sender.close()
    click.echo("stopped")


def _report(result: Batch) -> None:
    from idp.db import utcnow

    click.echo(f"{_when(utcnow())} sent {result.sent}, delayed "
               f"{result.still_pending}, failed {result.failed}, expired {result.expired}")


@group.command("list")
@click.option("--status", type=LazyChoice("idp.channels.models:MESSAGE_STATUSES"),
              help="Only messages in this state (default: all).")
@tenant_option(help="Only this tenant's messages.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Show at most this many, newest first.")
@json_option()
def list_messages(status: str | None, tenant: str | None, limit: int, as_json: bool) -> None:
    """List queued, sent and failed messages, newest first (never their content).

    The last error is shown for messages not sent yet, or given up: once a
    message is sent, the errors of its earlier attempts no longer matter.
    """
    from sqlalchemy import func, select

    from idp.channels.models import MESSAGE_STATUSES, Message
    from idp.extensions import db

    session = db()
    statement = select(Message).order_by(Message.id.desc()).limit(limit)
    count = select(Message.status, func.count()).group_by(Message.status)
    if status:
        statement = statement.where(Message.status == status)
    if tenant:
        tenant_by_slug(tenant)
        statement = statement.where(Message.tenant == tenant)
        count = count.where(Message.tenant == tenant)
    rows = session.scalars(statement).all()
    if as_json:
        for message in rows:
            echo_json(_as_record(message))
        return
    totals: dict[str, int] = dict(session.execute(count).all())
    if rows:
        echo_table(
            ("ID", "CREATED (UTC)", "STATUS", "TENANT", "CHANNEL", "TEMPLATE", "RECIPIENT",
             "ATTEMPTS", "NEXT TRY / SENT", "LAST ERROR"),
            [
                (
                    str(record["id"]), _when(message.created_at), message.status, message.tenant,
                    message.channel, message.template, str(record["recipient"]), str(message.attempts),
                    _when(message.sent_at if message.status == "sent"
                          else message.next_attempt_at if message.status == "pending" else None),
                    str(record["last_error"] or "-"),
                )
                for message, record in ((message, _as_record(message)) for message in rows)
            ],
        )
    else:
        click.echo("no messages")
    click.echo(", ".join(f"{name}: {totals.get(name, 0)}" for name in MESSAGE_STATUSES))


def _as_record(message: Message) -> dict[str, object]:
    """What a listing shows of a message: never its body; the recipient masked; the last
    error only while it still matters (not once the message is sent)."""
    from idp.channels.senders import mask_recipient

    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "id": message.id, "tenant": message.tenant, "channel": message.channel,
        "template": message.template, "recipient": mask_recipient(message.channel, message.recipient),
        "status": message.status, "attempts": message.attempts,
        "created_at": iso(message.created_at),
        "next_attempt_at": iso(message.next_attempt_at) if message.status == "pending" else None,
        "sent_at": iso(message.sent_at),
        "last_error": None if message.status == "sent" else message.last_error,
    }


@group.command("retry")
@click.argument("ids", nargs=-1, type=ROW_ID, metavar="[ID]...")
@click.option("--all-failed", is_flag=True, help="Every failed message.")
def retry(ids: tuple[int, ...], all_failed: bool) -> None:
    """Put failed messages back in the queue, due now with a fresh set of attempts.

    Give message ids (from `idp outbox list`) or --all-failed. A pending
    message given by id is made due now. All or nothing: if any id is
    unknown, already sent or carries a code that has expired, nothing
    changes. --all-failed marks those with an expired code expired instead.
    """
    from sqlalchemy import select

    from idp.channels.models import Message
    from idp.channels.services import MessageAlreadySent, MessageExpired
    from idp.extensions import db

    if bool(ids) == all_failed:
        raise click.UsageError("give message ids or --all-failed (not both)")
    session = db()
    messages = _messages()
    expired: list[Message] = []
    try:
        with transaction():
            if all_failed:
                chosen, expired = messages.retry_failed()
            else:
                found = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}
                missing = [str(i) for i in ids if i not in found]
                if missing:
                    raise click.ClickException(f"no message {', '.join(missing)}; nothing was changed")
                chosen = [found[i] for i in dict.fromkeys(ids)]
                for message in chosen:
                    messages.retry(message)
    except (MessageAlreadySent, MessageExpired) as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None
    if expired:
        click.echo(f"{len(expired)} message(s) not requeued, their code has expired: "
                   f"{', '.join(str(message.id) for message in expired)}")
    if not chosen:
        click.echo("no failed messages" if not expired else "no other failed messages")
        return
    click.echo(f"{len(chosen)} message(s) back in the queue: "
               f"{', '.join(str(message.id) for message in chosen)}")

"""`idp audit`: read the audit log of security events (newest first).

Events are never changed by this command. Their details carry ids and
reasons, never a password, code, token or link.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from idp.cli.common import echo_json, echo_table, in_app_context, json_option, tenant_by_slug, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from idp.events import AuditEvent

# "7d", "24h", "30m": that long before now.
_RELATIVE = re.compile(r"^(\d{1,5})([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
# A tag or the start of one, whole parts only: "account:login" selects "account:login:failure".
_TAG = re.compile(r"^[a-z0-9-]+(?::[a-z0-9-]+)*$")
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_since(value: str, now: datetime) -> datetime:
    """A naive UTC moment from an ISO 8601 date or time, or a duration back from ``now``."""
    relative = _RELATIVE.match(value.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO date or time (2026-03-01, 2026-03-01T08:30Z) "
            "nor a duration (7d, 24h, 30m)", param_hint="--since") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:59-14:00 is after the last representable moment
            raise click.BadParameter(f"{value!r} is out of range", param_hint="--since") from None
    return moment


def _account_id(session: Session, value: str, tenant: str | None) -> str:
    """An account id as given, or the id of the account with that email or member number
    (whatever the account signs in with today)."""
    from sqlalchemy import select

    from idp.accounts.models import Account
    from idp.identifiers import InvalidIdentifier, normalize_email, parse_member_number

    value = value.strip()
    if _ACCOUNT_ID.match(value.lower()):
        return value.lower()
    try:
        query = select(Account).where(Account.member_number == parse_member_number(value))
    except InvalidIdentifier:
        query = select(Account).where(Account.email == normalize_email(value))
    if tenant:
        query = query.where(Account.tenant == tenant_by_slug(tenant).slug)
    found = session.scalars(query.order_by(Account.tenant)).all()
    if not found:
        raise click.BadParameter(f"no account with the id or identifier {value!r}",
                                 param_hint="--account")
    if len(found) > 1:
        raise click.BadParameter(
            f"{value!r} names accounts in several tenants "
            f"({', '.join(a.tenant for a in found)}): add --tenant", param_hint="--account")
    return found[0].id


def _tag_filter(tag: str) -> Any:
    from sqlalchemy import or_

    from idp.events import TAGS, AuditEvent

    if not _TAG.match(tag):
        raise click.BadParameter(f"{tag!r} is not an event tag (e.g. account:login:failure)",
                                 param_hint="--tag")
    known = [whole.split(":") for whole in TAGS]
    parts = tag.split(":")
    if not any(whole[:len(parts)] == parts for whole in known):
        # The parts that may follow the longest start of it that longer tags have.
        start = max(length for length in range(len(parts))
                    if any(len(whole) > length and whole[:length] == parts[:length] for whole in known))
        following = ", ".join(sorted({whole[start] for whole in known
                                      if len(whole) > start and whole[:start] == parts[:start]}))
        where = f"after {':'.join(parts[:start])}: {following}" if start else \
            f"tags start with {following}"
        raise click.BadParameter(f"no event tag is or starts with {tag!r} ({where})",
                                 param_hint="--tag")
    return or_(AuditEvent.tag == tag, AuditEvent.tag.startswith(tag + ":"))


def _as_dict(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "time": event.created_at.isoformat(timespec="seconds") + "Z",
        "tag": event.tag,
        "tenant": event.tenant,
        "account_id": event.account_id,
        "client_id": event.client_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "data": event.data or {},
    }


@click.command("audit")
@tenant_option(help="Only this tenant's events.")
@click.option("--account", "account",
              help="Only events of this account: its id (the OIDC sub) or its identifier "
                   "(email or member number; add --tenant if several tenants have it).")
@click.option("--since", help="From this moment: an ISO date or time in UTC unless it says "
                              "otherwise (2026-03-01, 2026-03-01T08:30+01:00), or a duration "
                              "back from now (7d, 24h, 30m).")
@click.option("--tag", "tags", multiple=True,
              help="Only events with this tag or under it (account:login selects "
                   "account:login:success and account:login:failure). Repeat for several.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="Show at most this many events, newest first.")
@json_option()
@in_app_context
def group(tenant: str | None, account: str | None, since: str | None, tags: tuple[str, ...],
          limit: int, as_json: bool) -> None:
    """The audit log of security events, newest first."""
    from sqlalchemy import or_, select

    from idp.db import utcnow
    from idp.events import AuditEvent
    from idp.extensions import db

    session = db()
    statement = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if tenant:
        statement = statement.where(AuditEvent.tenant == tenant_by_slug(tenant).slug)
    if account:
        statement = statement.where(AuditEvent.account_id == _account_id(session, account, tenant))
    if since:
        statement = statement.where(AuditEvent.created_at >= parse_since(since, utcnow()))
    if tags:
        statement = statement.where(or_(*(_tag_filter(tag) for tag in tags)))
    found = session.scalars(statement.limit(limit)).all()
    if as_json:
        for event in found:
            echo_json(_as_dict(event))
        return
    if not found:
        click.echo("no events")
        return
    echo_table(("TIME (UTC)", "TAG", "TENANT", "ACCOUNT", "CLIENT", "IP", "DETAILS"), [
        (event.created_at.strftime("%Y-%m-%d %H:%M:%S"), event.tag, event.tenant or "-",
         event.account_id or "-", event.client_id or "-", event.ip or "-",
         " ".join(f"{key}={value}" for key, value in (event.data or {}).items()) or "-")
        for event in found
    ])

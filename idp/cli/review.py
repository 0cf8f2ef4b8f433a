"""`idp review`: the manual review queue of near-miss registrations (SPEC §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idp.cli.common import (
    ROW_ID,
    CommandGroup,
    echo_json,
    json_option,
    printable,
    tenant_by_slug,
    tenant_option,
    transaction,
)

if TYPE_CHECKING:
    from idp.accounts.models import Account
    from idp.accounts.registration import Registrations

# The longest reason registration_requests.decision_reason keeps (idp/accounts/models.py).
MAX_REASON_LENGTH = 500

group = CommandGroup("review", help="Registrations that need a person's decision (near misses, "
                                "contacts that differ from the registry's, members without contacts).")


def _service(tenant: str) -> Registrations:
    from idp.accounts.registration import Registrations
    from idp.channels.services import Messages
    from idp.extensions import db, find_service, services

    return Registrations(db(), tenant_by_slug(tenant), find_service(Messages),
                         services().settings.secret_key)


@group.command("list")
@tenant_option(required=True, help="Tenant whose queue to show.")
@json_option()
def list_command(tenant: str, as_json: bool) -> None:
    """Pending requests, oldest first."""
    requests = _service(tenant).pending_requests()
    if as_json:
        for request in requests:
            echo_json({"id": request.id, "tenant": request.tenant, "reason": request.reason,
                       "differences": list(request.differences),
                       "created_at": f"{request.created_at:%Y-%m-%dT%H:%M:%SZ}"})
        return
    if not requests:
        click.echo("no pending request")
        return
    click.echo(f"{'ID':>6}  {'RECEIVED (UTC)':19}  {'REASON':16}  DIFFERENCES")
    for request in requests:
        click.echo(f"{request.id:>6}  {request.created_at:%Y-%m-%d %H:%M:%S}  {request.reason:16}  "
                   f"{', '.join(request.differences) or '-'}")


@group.command("show")
@tenant_option(required=True, help="Tenant of the request.")
@click.argument("request_id", type=ROW_ID)
def show(tenant: str, request_id: int) -> None:
    """What the member typed next to what the registry holds."""
    from sqlalchemy import select

    from idp.accounts.models import Account, RegistrationRequest
    from idp.extensions import db
    from idp.registry.models import Member

    the_tenant = tenant_by_slug(tenant)
    request = db().get(RegistrationRequest, request_id)
    if request is None or request.tenant != the_tenant.slug:
        raise click.ClickException(f"no registration request {request_id} in {the_tenant.slug}")
    member = db().get_one(Member, request.member_id)  # the request goes when its member does
    typed = request.submitted
    click.echo(f"request {request.id} — {request.status} — {request.reason}")
    account = db().scalar(select(Account).where(Account.tenant == the_tenant.slug,
                                                Account.member_number == member.member_number))
    click.echo(f"account: {_account_state(account)}")
    # What the member typed is shown as text, never as terminal control sequences.
    rows = [("member number", member.member_number, member.member_number),
            ("last name", typed["last_name"], member.last_name),
            ("first name", typed["first_name"], member.first_name),
            ("birth date", typed["birth_date"], member.birth_date.isoformat()),
            ("email", typed["email"], member.email or "-"),
            ("mobile", typed.get("mobile") or "-", member.mobile or "-")]
    click.echo(f"{'':14}  {'TYPED':32}  ON FILE")
    for label, entered, on_file in rows:
        click.echo(f"{label:14}  {printable(entered):32}  {printable(on_file)}")


def _account_state(account: Account | None) -> str:
    """The member's account as a reviewer needs to know it before deciding."""
    if account is None:
        return "none yet"
    if account.is_active:
        return (f"active since {account.created_at:%Y-%m-%d} — approving is refused; contacts "
                f"change with `idp accounts set-contact` once the member is checked")
    if account.awaits_letter:
        return "pending, waiting for the code sent by post"
    return "pending, waiting for its activation link to be used"


@group.command("approve")
@tenant_option(required=True, help="Tenant of the request.")
@click.argument("request_id", type=ROW_ID)
def approve(tenant: str, request_id: int) -> None:
    """Accept the request: the account is created and the activation email sent.

    Refused when the member's account is already active: a registration never changes an
    active account's contacts.
    """
    with transaction():
        _service(tenant).approve(request_id)
    click.echo(f"request {request_id} approved; activation email sent")


@group.command("reject")
@tenant_option(required=True, help="Tenant of the request.")
@click.option("--reason", required=True, help="Why (kept for the audit trail).")
@click.argument("request_id", type=ROW_ID)
def reject(tenant: str, request_id: int, reason: str) -> None:
    """Refuse the request: the member receives a rejection email."""
    from idp.identifiers import has_invisible

    reason = reason.strip()
    if not reason:
        raise click.BadParameter("give a reason", param_hint="--reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise click.BadParameter(f"at most {MAX_REASON_LENGTH} characters", param_hint="--reason")
    if has_invisible(reason):
        raise click.BadParameter("one line, without control or invisible characters",
                                 param_hint="--reason")
    with transaction():
        _service(tenant).reject(request_id, reason)
    click.echo(f"request {request_id} rejected; the member was told by email")

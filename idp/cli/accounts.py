"""`idp accounts`: create and list member accounts (operators, support, demos).

A password is read from standard input, never from the command line, where
it would end in the shell history and the process list.
"""

from __future__ import annotations

import sys
from datetime import date
from typing import TYPE_CHECKING

import click

from idp.cli.common import (
    CommandGroup,
    LazyChoice,
    echo_json,
    json_option,
    tenant_by_slug,
    tenant_option,
    transaction,
)

if TYPE_CHECKING:
    from idp.accounts.passwords import PersonalData
    from idp.tenancy import Tenant

MAX_NAME_LENGTH = 100
# idp.identifiers.YYYY_MM_DD, spelt out here so that the option is declared without loading it.
BIRTH_DATE_LAYOUT = "YYYY-MM-DD"

group = CommandGroup("accounts", help="Member accounts of each tenant.")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _stdin_line() -> str:
    """One line of standard input, without its line break or a byte-order mark (a file saved by
    Windows' Notepad begins with one); a UsageError when it is not UTF-8 text."""
    raw = sys.stdin.buffer.readline()
    try:
        return raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise click.UsageError("standard input is not UTF-8 text") from None


def _read_password(tenant: Tenant, personal: PersonalData | None = None) -> str:
    """Twice at a terminal (hidden), else one line from the pipe; the tenant's rules apply."""
    from idp.accounts.passwords import password_errors
    from idp.identifiers import has_invisible

    if _interactive():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = _stdin_line()
        if not password:
            raise click.UsageError("no password: give it on standard input (one line)")
    if has_invisible(password):
        # No one could type it in the sign-in page, which refuses such characters.
        raise click.UsageError("the password holds a control or invisible character")
    policy = tenant.password
    failed = password_errors(password, policy, personal)
    if failed:
        explained = {
            "length": f"{policy.min_length} to {policy.max_length} characters",
            "lowercase": "a lowercase letter", "uppercase": "an uppercase letter",
            "digit": "a digit",
            "special": f"a special character ({policy.specials or 'any symbol'})",
            "common": "not a common password", "personal": "no name, birth date, number or email",
        }
        raise click.UsageError("the password must have: " + "; ".join(explained[c] for c in failed))
    return password


def _name(value: str, option: str) -> str:
    from idp.identifiers import has_invisible

    value = value.strip()
    if not value or len(value) > MAX_NAME_LENGTH:
        raise click.BadParameter(f"1 to {MAX_NAME_LENGTH} characters", param_hint=option)
    if has_invisible(value):
        raise click.BadParameter("contains a control or invisible character", param_hint=option)
    return value


def _email(value: str) -> str:
    from idp.identifiers import InvalidIdentifier, parse_email

    try:
        return parse_email(value)
    except InvalidIdentifier:
        raise click.BadParameter(f"{value!r} is not an email address", param_hint="--email") from None


def _mobile(value: str) -> str:
    from idp.identifiers import InvalidIdentifier, parse_mobile

    try:
        return parse_mobile(value)
    except InvalidIdentifier as exc:
        what = "a phone number" if exc.reason == "not_a_number" else "a valid mobile number"
        raise click.BadParameter(f"{value!r} is not {what}", param_hint="--phone") from None


def _member_number(value: str) -> str:
    from idp.identifiers import InvalidIdentifier, parse_member_number

    try:
        return parse_member_number(value)
    except InvalidIdentifier:
        raise click.BadParameter("a member number has exactly 8 digits",
                                 param_hint="--member-number") from None


def _birth_date(_context: click.Context, _parameter: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    from idp.identifiers import YYYY_MM_DD, InvalidIdentifier, parse_birth_date

    try:
        return parse_birth_date(value, layouts=(YYYY_MM_DD,))
    except InvalidIdentifier as exc:
        if exc.reason in ("future", "too_old"):
            raise click.BadParameter(f"the birth date {exc}") from None
        raise click.BadParameter(f"{value!r} is not a date ({YYYY_MM_DD})") from None


@group.command("create")
@tenant_option(required=True, help="Tenant of the account (e.g. malakoff).")
@click.option("--given-name", required=True, help="First name.")
@click.option("--family-name", required=True, help="Last name.")
@click.option("--email", help="Email address; required where members sign in with it (malakoff).")
@click.option(
    "--member-number",
    help="8-digit member number; required where members sign in with it (miel).",
)
@click.option("--birthdate", callback=_birth_date, metavar=BIRTH_DATE_LAYOUT, help="Birth date.")
@click.option("--phone", help="Mobile phone number (French unless it starts with +).")
@click.option("--hash-on-stdin", "hash_from_stdin", is_flag=True,
              help="Standard input holds the account's password hash from the previous system "
                   "(pbkdf2_sha256$…, bcrypt $2b$…, or $argon2id$…) instead of a password; "
                   "a legacy one is stored wrapped in argon2id, and replaced by plain argon2id "
                   "at the first sign-in.")
@click.option("--legacy", is_flag=True,
              help="An account of the previous system (malakoff): signs in with its member number "
                   "until it moves to its email (`idp migration`).")
def create(
    tenant: str,
    given_name: str,
    family_name: str,
    email: str | None,
    member_number: str | None,
    birthdate: date | None,
    phone: str | None,
    hash_from_stdin: bool,
    legacy: bool,
) -> None:
    """Create an active account. The password is read from standard input.

    At a terminal it is asked twice, hidden; otherwise the first line of the
    input is the password, e.g. `idp accounts create … < password-file`.
    It is never accepted as an option.
    """
    from sqlalchemy.exc import IntegrityError

    from idp.accounts.passwords import PersonalData
    from idp.accounts.services import AccountExists, create_account
    from idp.extensions import services

    the_tenant = tenant_by_slug(tenant)
    given_name = _name(given_name, "--given-name")
    family_name = _name(family_name, "--family-name")
    if email is not None:
        email = _email(email)
    if legacy and not (the_tenant.logs_in_with_email and member_number):
        raise click.UsageError("--legacy needs --member-number, in a tenant whose members sign in "
                               "with an email")
    if the_tenant.logs_in_with_email and not email and not legacy:
        raise click.UsageError(f"{the_tenant.slug} accounts sign in with an email: give --email")
    if not the_tenant.logs_in_with_email and not member_number:
        raise click.UsageError(
            f"{the_tenant.slug} accounts sign in with a member number: give --member-number"
        )
    if member_number is not None:
        member_number = _member_number(member_number)
    phone_number = _mobile(phone) if phone else None
    if hash_from_stdin:
        password, password_hash = None, _stdin_line().strip()
        problem = services().hasher.import_problem(password_hash)
        if problem is not None:
            # A hash costlier than the bounds would hold a worker at every sign-in attempt.
            raise click.UsageError(f"--hash-on-stdin: {problem.reason} (a sign-in would hold a "
                                   "worker that long); rehash it, or create the account with a "
                                   "password" if problem.costly else
                                   f"--hash-on-stdin: standard input holds {problem.reason}")
    else:
        password_hash, password = None, _read_password(the_tenant, PersonalData(
            first_name=given_name, last_name=family_name, birth_date=birthdate,
            member_number=member_number, email=email))

    try:
        with transaction() as session:
            account = create_account(
                session, services().hasher, the_tenant,
                given_name=given_name, family_name=family_name, password=password,
                email=email, member_number=member_number, birthdate=birthdate,
                phone_number=phone_number, legacy_login=legacy, password_hash=password_hash,
            )
    except (AccountExists, IntegrityError):
        raise click.ClickException(
            f"an account with this email or member number already exists in {the_tenant.slug}"
        ) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    identifier = account.email if the_tenant.logs_in_with_email and not legacy else account.member_number
    click.echo(f"created account {account.id} in {the_tenant.slug}: signs in as {identifier}")


@group.command("list")
@tenant_option(required=True, help="Tenant whose accounts to list.")
@click.option(
    "--status", type=LazyChoice("idp.accounts.models:ACCOUNT_STATUSES"),
    help="Only accounts in this state.",
)
@json_option()
def list_command(tenant: str, status: str | None, as_json: bool) -> None:
    """List a tenant's accounts, oldest first: id (the OIDC sub), identifier, status."""
    from sqlalchemy import select

    from idp.accounts.models import Account

    the_tenant = tenant_by_slug(tenant)
    query = select(
        Account.id, Account.email, Account.member_number, Account.status, Account.created_at,
        Account.legacy_login,
    ).where(Account.tenant == the_tenant.slug)
    if status:
        query = query.where(Account.status == status)
    with transaction() as session:
        count = 0
        rows = session.execute(query.order_by(Account.created_at, Account.id))
        # The header once the query has answered: a failure is then the command's only line.
        if not as_json:
            click.echo(f"{'ID':<36}  {'IDENTIFIER':<40}  {'STATUS':<8}  CREATED")
        for row in rows:
            count += 1
            if the_tenant.logs_in_with_email:
                identifier = f"{row.member_number} (legacy)" if row.legacy_login else row.email
            else:
                identifier = row.member_number or row.email or "-"
            created = row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if as_json:
                echo_json({"id": row.id, "tenant": the_tenant.slug, "email": row.email,
                           "member_number": row.member_number, "legacy_login": row.legacy_login,
                           "status": row.status, "created_at": created})
            else:
                click.echo(f"{row.id:<36}  {identifier:<40}  {row.status:<8}  {created}")
    if not as_json:
        click.echo(f"{count} account(s)")


@group.command("wrap-legacy-hashes")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Accounts changed per transaction.")
def wrap_legacy_hashes_command(batch: int) -> None:
    """Wrap in argon2id the password hashes of the previous system still stored as imported.

    Imports store a PBKDF2 or bcrypt hash wrapped (argon2id over its digest); accounts
    imported before that keep the fast legacy digest until their first sign-in. This
    wraps every one of them, in every tenant: the members' passwords stay the same. It
    can run while members sign in, and again (it changes only what is left).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from idp.accounts.services import wrap_legacy_hashes
    from idp.extensions import db, services

    try:
        wrapped = wrap_legacy_hashes(db(), services().hasher, batch=batch)
    except SQLAlchemyError as exc:
        db().rollback()
        raise click.ClickException(
            f"database error ({type(exc).__name__}); the batches already done are kept: "
            "run it again") from None
    click.echo(f"{wrapped} legacy password hash(es) wrapped in argon2id")


@group.command("set-password")
@tenant_option(required=True, help="Tenant of the account.")
@click.argument("identifier")
def set_password_command(tenant: str, identifier: str) -> None:
    """Give an account a new password, read from standard input (never from arguments).

    Like a member's own change: every trusted device, token and other session
    of the account ends.
    """
    from idp.accounts.services import find_by_identifier, set_password
    from idp.extensions import services

    the_tenant = tenant_by_slug(tenant)
    password = _read_password(the_tenant)
    with transaction() as session:
        account = find_by_identifier(session, the_tenant, identifier)
        if account is None:
            raise click.ClickException(f"no account {identifier!r} in {the_tenant.slug}")
        set_password(session, services().hasher, account, password, reason="operator")
    click.echo(f"new password set for account {account.id}; its devices, tokens and sessions are revoked")


@group.command("set-contact")
@tenant_option(required=True, help="Tenant of the account.")
@click.option("--email", help="The member's email address, checked with the member by support.")
@click.option("--phone", help="The member's mobile number (French unless it starts with +).")
@click.argument("identifier")
def set_contact_command(tenant: str, identifier: str, email: str | None, phone: str | None) -> None:
    """Give an account the email address and/or mobile number support has checked with the member.

    For an account that cannot receive its sign-in code: no contact on file
    (an imported legacy account), or a number or address the member has lost.
    Both count as verified. The previous address, if any, is told of the
    change; each change is in the audit log with the reason "operator".
    Where members sign in with their email, a new address is also the new
    identifier of an account that no longer signs in with its member number.
    """
    from idp.accounts.services import (
        EndedSessions,
        change_email,
        change_mobile,
        email_in_use,
        find_by_identifier,
    )
    from idp.channels.services import Messages
    from idp.extensions import find_service

    if email is None and phone is None:
        raise click.UsageError("give --email, --phone or both")
    the_tenant = tenant_by_slug(tenant)
    address = _email(email) if email is not None else None
    number = _mobile(phone) if phone is not None else None
    with transaction() as session:
        account = find_by_identifier(session, the_tenant, identifier)
        if account is None:
            raise click.ClickException(f"no account {identifier!r} in {the_tenant.slug}")
        if address is not None and email_in_use(session, the_tenant, address, account):
            raise click.ClickException(f"another account of {the_tenant.slug} has the address {address}")
        # A change of factor: the member's sessions, tokens and trusted browsers end.
        ended = find_service(EndedSessions)
        if address is not None:
            change_email(session, find_service(Messages), the_tenant, account, address,
                         reason="operator", ended=ended)
        if number is not None:
            change_mobile(session, find_service(Messages), the_tenant, account, number,
                          reason="operator", ended=ended)
    changed = " and ".join(what for what, value in (("email", address), ("mobile", number)) if value)
    click.echo(f"{changed} of account {account.id} set and verified")


@group.command("sign-out")
@tenant_option(required=True, help="Tenant of the account.")
@click.argument("identifier")
def sign_out_command(tenant: str, identifier: str) -> None:
    """Sign an account out everywhere (support): IDENTIFIER is its email, member number or id.

    Every provider session of the account ends, with the tokens it granted (refresh tokens
    included); the portals they signed in to are told by back-channel logout tokens, which
    the worker (`idp outbox work`) delivers.
    """
    from idp.accounts.models import Account
    from idp.accounts.services import find_by_identifier
    from idp.oidc.sessions import end_sessions

    the_tenant = tenant_by_slug(tenant)
    with transaction() as session:
        account = find_by_identifier(session, the_tenant, identifier)
        if account is None and len(identifier) <= 36:
            found = session.get(Account, identifier)
            account = found if found is not None and found.tenant == the_tenant.slug else None
        if account is None:
            raise click.ClickException(f"no account {identifier!r} in {the_tenant.slug}")
        ended = end_sessions(session, the_tenant.slug, account.id, reason="operator")
    click.echo(f"account {account.id} signed out: {len(ended.sessions)} session(s) ended, "
               f"{ended.notified} portal notification(s) queued")

"""`idp clients`: register, list, show and remove the relying parties of a tenant.

The checks live in ``idp.oidc.clients``; these commands translate options and
print results. A client secret is printed once, when the client is added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from idp.cli.common import (
    CommandGroup,
    LazyChoice,
    echo_json,
    echo_table,
    json_option,
    printable,
    tenant_by_slug,
    tenant_option,
    transaction,
)

if TYPE_CHECKING:
    from idp.oidc.models import Client

# The scopes of idp.oidc.models.SUPPORTED_SCOPES, named in the help without loading the models
# (tests/cli/test_help.py keeps them in step).
SCOPES_HELP = "openid, profile, email, phone, member, offline_access"

group = CommandGroup(
    "clients",
    help="Manage the relying parties (OIDC clients) registered with each tenant.",
)


@group.command("add")
@tenant_option(required=True, help="Tenant the client belongs to (e.g. malakoff).")
@click.option("--name", required=True, help="Name shown to members on the consent screen.")
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, required=True, metavar="URI",
    help="Where codes are sent; matched exactly. https, or http on localhost/127.0.0.1 "
    "for development. Repeat for several.",
)
@click.option(
    "--post-logout-uri", "post_logout_uris", multiple=True, metavar="URI",
    help="Where the member may be sent after logging out (repeatable).",
)
@click.option(
    "--scope", "scopes", multiple=True, metavar="SCOPE",
    help=f"Scope the client may ask for (repeatable; must include openid). "
    f"Supported: {SCOPES_HELP}. Default: all of them.",
)
@click.option(
    "--auth-method", type=LazyChoice("idp.oidc.models:AUTH_METHODS"), default="client_secret_basic",
    show_default=True,
    help="How the client authenticates at the token endpoint; 'none' for public "
    "clients (PKCE required).",
)
@click.option(
    "--jwks", "jwks_file", type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file with the client's PUBLIC keys (a JWKS); required for private_key_jwt.",
)
@click.option(
    "--first-party/--third-party", default=False, show_default=True,
    help="First-party portals skip the consent screen.",
)
@click.option(
    "--pkce/--no-pkce", "require_pkce", default=True, show_default=True,
    help="Require PKCE (S256) at the authorization endpoint. --no-pkce only for a legacy "
    "confidential client that cannot send it.",
)
@click.option(
    "--refresh-lifetime", "refresh_token_ttl", type=int, metavar="SECONDS",
    help="Absolute lifetime of its refresh tokens, counted from the sign-in "
    "(default: IDP_REFRESH_TOKEN_TTL).",
)
@click.option(
    "--backchannel-logout-uri", metavar="URI",
    help="Where logout tokens are posted when a member's provider session ends (OIDC "
    "Back-Channel Logout). https, or http on localhost/127.0.0.1 for development.",
)
@click.option(
    "--backchannel-logout-session-required/--no-backchannel-logout-session-required",
    "session_required", default=False, show_default=True,
    help="The client needs the sid claim in logout tokens (always sent).",
)
@click.option(
    "--require-par/--no-require-par", "require_par", default=False, show_default=True,
    help="Accept its authorization requests only through the pushed authorization request "
    "endpoint (RFC 9126).",
)
@click.option("--client-id", help="Client id to use (default: generated, '<tenant>-<random>').")
@click.option("--json", "as_json", is_flag=True, help="Print client_id and secret as JSON.")
def add(
    tenant: str,
    name: str,
    redirect_uris: tuple[str, ...],
    post_logout_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    auth_method: str,
    jwks_file: Path | None,
    first_party: bool,
    require_pkce: bool,
    refresh_token_ttl: int | None,
    backchannel_logout_uri: str | None,
    session_required: bool,
    require_par: bool,
    client_id: str | None,
    as_json: bool,
) -> None:
    """Register a client. Its secret, if any, is printed once: store it now."""
    from sqlalchemy.exc import IntegrityError

    from idp.oidc.clients import DEFAULT_SCOPES, parse_jwks, register_client

    scopes = scopes or DEFAULT_SCOPES
    the_tenant = tenant_by_slug(tenant)
    jwks = None
    if jwks_file is not None:
        try:
            text = jwks_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {jwks_file}: {exc}", param_hint="--jwks"
            ) from None
        try:
            jwks = parse_jwks(text)
        except RecursionError:
            # json.loads recurses once per nesting level; a JWKS has three.
            raise click.BadParameter(f"{jwks_file} is nested too deeply to be a JWKS",
                                     param_hint="--jwks") from None
    try:
        with transaction() as session:
            client, secret = register_client(
                session, the_tenant, name=name, redirect_uris=redirect_uris,
                post_logout_redirect_uris=post_logout_uris, scopes=scopes,
                auth_method=auth_method, jwks=jwks, first_party=first_party,
                client_id=client_id, require_pkce=require_pkce, refresh_token_ttl=refresh_token_ttl,
                backchannel_logout_uri=backchannel_logout_uri,
                backchannel_logout_session_required=session_required,
                require_pushed_authorization_requests=require_par,
            )
    except IntegrityError:
        # Another operator registered the same client id in the meantime.
        raise click.ClickException("a client with this id already exists") from None
    if as_json:
        click.echo(json.dumps({
            "client_id": client.client_id,
            "client_secret": secret,
            "tenant": client.tenant,
            "auth_method": client.auth_method,
        }))
        return
    click.echo(f"registered client {client.client_id} ({printable(client.name)}) in tenant {client.tenant}")
    if secret:
        click.echo("client secret (shown only now; only its digest is stored):")
        click.echo(f"  {secret}")
    elif client.auth_method == "none":
        click.echo("public client: no secret; it must use PKCE (S256)")
    else:
        click.echo("no secret: the client signs its assertions with the keys registered")


@group.command("list")
@tenant_option(required=True, help="Tenant whose clients to list.")
@json_option()
def list_command(tenant: str, as_json: bool) -> None:
    """List a tenant's clients, oldest first."""
    from idp.oidc.clients import list_clients

    the_tenant = tenant_by_slug(tenant)
    with transaction() as session:
        clients = list_clients(session, the_tenant)
    if as_json:
        for client in clients:
            echo_json({"client_id": client.client_id, "tenant": client.tenant, "name": client.name,
                       "auth_method": client.auth_method, "first_party": client.first_party,
                       "pkce_required": client.pkce_required,
                       "redirect_uris": list(client.redirect_uris or []),
                       "scopes": list(client.scopes or []), "created_at": _when(client)})
        return
    if not clients:
        click.echo(f"no clients in tenant {the_tenant.slug}; add one with `idp clients add`")
        return
    echo_table(("CLIENT_ID", "NAME", "AUTH_METHOD", "PARTY", "REDIRECT_URIS", "CREATED"), [
        (
            client.client_id,
            client.name,
            client.auth_method,
            "first" if client.first_party else "third",
            str(len(client.redirect_uris or [])),
            _when(client),
        )
        for client in clients
    ])


@group.command("show")
@click.argument("client_id")
def show(client_id: str) -> None:
    """Show every setting of CLIENT_ID (never its secret, which is not stored)."""
    from idp.oidc.clients import ClientRegistrationError, find_client

    with transaction() as session:
        client = find_client(session, client_id)
    if client is None:
        raise ClientRegistrationError(f"no client with id {client_id!r}")
    if client.secret_digest:
        credential = "set (only its digest is stored)"
    elif client.auth_method == "none":
        credential = "none (public client, PKCE required)"
    else:
        credential = "none (private_key_jwt)"
    keys = [
        f"{key.get('kid', '(no kid)')} ({key.get('kty')})"
        for key in (client.jwks or {}).get("keys", [])
    ]
    fields = [
        ("client_id", [client.client_id]),
        ("tenant", [client.tenant]),
        ("name", [client.name]),
        ("auth method", [client.auth_method]),
        ("secret", [credential]),
        ("party", ["first (no consent screen)" if client.first_party else "third (consent asked)"]),
        ("PKCE", ["required" if client.pkce_required else "not required (legacy exemption)"]),
        ("pushed requests", ["required (PAR only)" if client.require_pushed_authorization_requests
                             else "optional"]),
        ("refresh lifetime", [f"{client.refresh_token_ttl} s" if client.refresh_token_ttl
                              else "default (IDP_REFRESH_TOKEN_TTL)"]),
        ("scopes", [" ".join(client.scopes or [])]),
        ("redirect URIs", list(client.redirect_uris or [])),
        ("post-logout URIs", list(client.post_logout_redirect_uris or [])),
        ("back-channel logout", [
            f"{client.backchannel_logout_uri}"
            + (" (sid required)" if client.backchannel_logout_session_required else "")
        ] if client.backchannel_logout_uri else []),
        ("JWKS keys", keys),
        ("created", [_when(client)]),
    ]
    width = max(len(label) for label, _ in fields) + 1
    for label, values in fields:
        values = values or ["-"]
        # Escaped: a name stored before names were checked may hold a terminal's controls.
        click.echo(f"{label + ':':<{width}} {printable(values[0])}")
        for value in values[1:]:
            click.echo(f"{'':<{width}} {printable(value)}")


@group.command("update")
@click.argument("client_id")
@click.option(
    "--pkce/--no-pkce", "require_pkce", default=None,
    help="Require PKCE, or exempt a legacy confidential client from it.",
)
@click.option(
    "--refresh-lifetime", "refresh_token_ttl", type=int, metavar="SECONDS",
    help="Absolute lifetime of the refresh tokens issued from now on.",
)
@click.option(
    "--default-refresh-lifetime", is_flag=True,
    help="Go back to the provider's refresh token lifetime (IDP_REFRESH_TOKEN_TTL).",
)
@click.option(
    "--backchannel-logout-uri", metavar="URI",
    help="Where logout tokens are posted when a member's provider session ends.",
)
@click.option("--no-backchannel-logout", is_flag=True,
              help="Post no more logout tokens to this client.")
@click.option(
    "--backchannel-logout-session-required/--no-backchannel-logout-session-required",
    "session_required", default=None,
    help="Whether the client needs the sid claim in logout tokens (always sent).",
)
@click.option(
    "--require-par/--no-require-par", "require_par", default=None,
    help="Accept its authorization requests only through the pushed authorization request "
    "endpoint (RFC 9126), or at /authorize too.",
)
def update(client_id: str, require_pkce: bool | None, refresh_token_ttl: int | None,
           default_refresh_lifetime: bool, backchannel_logout_uri: str | None,
           no_backchannel_logout: bool, session_required: bool | None,
           require_par: bool | None) -> None:
    """Change the PKCE requirement, the refresh token lifetime, the back-channel logout or the
    requirement of pushed authorization requests of CLIENT_ID."""
    from idp.oidc.clients import update_client

    if (require_pkce is None and refresh_token_ttl is None and not default_refresh_lifetime
            and backchannel_logout_uri is None and not no_backchannel_logout
            and session_required is None and require_par is None):
        raise click.UsageError("nothing to change: give --pkce/--no-pkce, a refresh lifetime, "
                               "a back-channel logout option or --require-par/--no-require-par")
    if refresh_token_ttl is not None and default_refresh_lifetime:
        raise click.UsageError("--refresh-lifetime and --default-refresh-lifetime exclude each other")
    if backchannel_logout_uri is not None and no_backchannel_logout:
        raise click.UsageError("--backchannel-logout-uri and --no-backchannel-logout exclude each other")
    with transaction() as session:
        client = update_client(session, client_id, require_pkce=require_pkce,
                               refresh_token_ttl=refresh_token_ttl,
                               default_refresh_token_ttl=default_refresh_lifetime,
                               backchannel_logout_uri=backchannel_logout_uri,
                               no_backchannel_logout=no_backchannel_logout,
                               backchannel_logout_session_required=session_required,
                               require_pushed_authorization_requests=require_par)
        pkce = "required" if client.pkce_required else "not required"
        lifetime = f"{client.refresh_token_ttl} s" if client.refresh_token_ttl else "default"
        backchannel = client.backchannel_logout_uri or "none"
        par = "required" if client.require_pushed_authorization_requests else "optional"
    click.echo(f"updated client {client_id}: PKCE {pkce}, refresh lifetime {lifetime}, "
               f"back-channel logout {backchannel}, pushed requests {par}")


@group.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(client_id: str, yes: bool) -> None:
    """Remove CLIENT_ID with its codes, tokens and consents (members are signed out of it)."""
    from idp.oidc.clients import ClientRegistrationError, find_client, remove_client

    with transaction() as session:
        client = find_client(session, client_id)
        if client is None:
            raise ClientRegistrationError(f"no client with id {client_id!r}")
        if not yes:
            click.confirm(
                f"Remove client {client.client_id} ({client.name}, tenant {client.tenant})? "
                "Its tokens and consents are deleted too",
                abort=True,
            )
        remove_client(session, client_id)
    click.echo(f"removed client {client_id}")


def _when(client: Client) -> str:
    return client.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if client.created_at else "-"

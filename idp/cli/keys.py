"""`idp keys`: list, generate, activate, retire, rotate and prune signing keys.

The work is done by ``idp.keystore.KeyStore``; these commands only translate
arguments and print results. Every node reads the keys directory on each
request, so changes made here take effect without restarting the servers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idp.cli.common import CommandGroup, LazyChoice, echo_json, echo_table, json_option

if TYPE_CHECKING:
    from idp.keystore import KeyInfo, KeyStore

group = CommandGroup(
    "keys",
    help=(
        "Manage the signing keys. A key is published in the JWKS as 'next', signs "
        "once 'active', and stays published as 'retired' until every token it signed "
        "has expired. `idp keys rotate` (run it regularly) does all three."
    ),
)




def _store() -> KeyStore:
    from flask import current_app

    return current_app.extensions["idp"].keystore


def _when(timestamp: float | None) -> str:
    from idp.keystore import format_time

    return "-" if timestamp is None else format_time(timestamp)


@group.command("list")
@json_option()
def list_keys(as_json: bool) -> None:
    """List the keys, oldest first; '*' marks the key that signs.

    Exits with 1 when a key's private key file is missing or unreadable (each is named,
    with what to do): the provider can then neither publish its keys nor sign.
    """
    store = _store()
    keys = store.all_keys()
    problems = store.problems()
    if as_json:
        for info in keys:
            echo_json({"kid": info.kid, "alg": info.alg, "state": info.state,
                       "created_at": _iso(info.created_at), "activated_at": _iso(info.activated_at),
                       "retired_at": _iso(info.retired_at), "problem": problems.get(info.kid)})
    elif not keys:
        click.echo(f"no keys in {store.directory}; run `idp keys generate`")
    else:
        echo_table(("", "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"), [
            ("*" if info.state == "active" else "!" if info.kid in problems else "", info.kid,
             info.alg, info.state, _when(info.created_at), _when(info.activated_at),
             _when(info.retired_at))
            for info in keys
        ])
        signs = ("* signs new tokens" if any(info.state == "active" for info in keys)
                 else "no key signs: activate one (`idp keys activate KID`)")
        click.echo(f"{signs}; every key listed is published in the JWKS")
    if problems:
        for message in problems.values():
            click.echo(f"! {message}", err=True)
        raise click.ClickException(
            f"{len(problems)} key(s) unusable: the provider can neither publish its keys nor sign")


@group.command("generate")
@click.option(
    "--alg",
    type=LazyChoice("idp.keystore:ALGORITHMS"),
    default="RS256",
    show_default=True,
    help="Signature algorithm: RS256 (RSA 2048) or ES256 (P-256).",
)
def generate(alg: str) -> None:
    """Publish a new key as 'next' (in the JWKS, not signing yet)."""
    store = _store()
    info = store.generate(alg)
    click.echo(f"generated {info.kid} ({info.alg}), published as next")
    click.echo(
        f"it may sign from {_when(store.activatable_at(info))}: "
        f"`idp keys activate {info.kid}` or `idp keys rotate`"
    )


@group.command("activate")
@click.argument("kid")
@click.option(
    "--force",
    is_flag=True,
    help="Activate even if the key was published too recently: relying parties "
    "that cached the JWKS before it may reject tokens until they refresh it.",
)
def activate(kid: str, force: bool) -> None:
    """Make KID the signing key; the key signing until now is retired."""
    store = _store()
    previous = _active(store)
    info = store.activate(kid, force=force)
    click.echo(f"activated {info.kid} ({info.alg}): it signs new tokens from now on")
    if previous is not None:
        retired = store.get(previous.kid)
        click.echo(
            f"retired {retired.kid}: still published until {_when(store.removable_at(retired))}"
        )


@group.command("retire")
@click.argument("kid")
def retire(kid: str) -> None:
    """Retire KID, a key published as 'next' that should never sign.

    The active key cannot be retired: activating another key retires it.
    """
    store = _store()
    info = store.retire(kid)
    click.echo(f"retired {info.kid}: still published until {_when(store.removable_at(info))}")


@group.command("forget")
@click.argument("kid")
def forget(kid: str) -> None:
    """Take out KID, a key whose private key file is lost (missing or unreadable).

    While listed, such a key stops the JWKS and the signing of tokens. Refused for a
    key whose file is sound (retire it instead) and for the active key (activate
    another key first). An unreadable file is left in place.
    """
    store = _store()
    info = store.forget(kid)
    click.echo(f"forgot {info.kid} ({info.state}): no longer listed in {store.directory}/keys.json "
               "nor published")


@group.command("rotate")
@click.option(
    "--force",
    is_flag=True,
    help="Activate the next key even if it was published too recently.",
)
def rotate(force: bool) -> None:
    """Activate the next key, publish a new next key, prune expired keys.

    Publish, then sign, then retire: each run activates the key published by
    the previous run, so run it at an interval longer than the pre-publication
    delay (for example from cron).
    """
    for line in _store().rotate(force=force):
        click.echo(line)


@group.command("prune")
def prune() -> None:
    """Delete retired keys whose tokens have all expired."""
    for line in _store().prune() or ["nothing to prune"]:
        click.echo(line)


def _iso(timestamp: float | None) -> str | None:
    from idp.keystore import format_time

    return None if timestamp is None else format_time(timestamp)


def _active(store: KeyStore) -> KeyInfo | None:
    return next((info for info in store.all_keys() if info.state == "active"), None)

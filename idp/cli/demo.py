"""`idp demo`: the whole product on one machine, with no server to install."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1024, 65533),
              help="Provider port; the portals take the next two.")
@click.option("--database", default="sqlite:///var/demo.sqlite3", show_default=True,
              help="Database URL for the demo data.")
@click.option("--keys-dir", default="var/demo-keys", show_default=True, envvar="IDP_KEYS_DIR",
              show_envvar=True, type=click.Path(file_okay=False),
              help="Where the demo keeps its signing keys (made on the first run); var/ is "
                   "not part of the checkout's tracked files.")
@click.option("--tenants-dir", envvar="IDP_TENANTS_DIR", show_envvar=True,
              type=click.Path(file_okay=False),
              help="The tenants' configuration (default: the checkout's config/tenants, wherever "
                   "the demo is started from).")
def group(host: str, port: int, database: str, keys_dir: str, tenants_dir: str | None) -> None:
    """Run the provider, both tenants and their demo portals (SQLite, in-process store, outbox).

    Everything it writes stays under var/: the database and the signing keys.
    Its log (standard error) names the server of each request line:
    "provider :5000", "portal malakoff :5001", "portal miel :5002".
    """
    from idp import create_app
    from idp.config import ConfigError
    from idp.demo.setup import (
        DEMO_ACCOUNTS,
        DEMO_REGISTRATIONS,
        DEMO_TENANTS,
        DemoServers,
        DemoWorker,
        build_portals,
        prepare,
    )

    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        Path(database.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://localhost:{port}"
    try:
        app = create_app({
            "database_url": database, "redis_url": "", "base_url": base_url, "keys_dir": keys_dir,
            "tenants_dir": tenants_dir or str(DEMO_TENANTS),
            "outbox_page": True, "mail_backend": "outbox", "sms_backend": "outbox",
            "letter_backend": "outbox",
        })
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    tenants = list(app.extensions["idp"].tenants)
    portal_ports = {slug: port + 1 + i for i, slug in enumerate(tenants)}
    # The ports first: a demo already running holds them, and must keep its portals'
    # clients, which prepare() would register again with new secrets.
    try:
        servers = DemoServers(host, [port, *portal_ports.values()],
                              names={port: "provider"}
                              | {number: f"portal {slug}" for slug, number in portal_ports.items()})
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host} ports {port}-{port + len(tenants)}: {exc.strerror or exc} "
            "(is a demo already running? try another --port)") from None
    try:
        portal_urls = {slug: f"http://localhost:{number}" for slug, number in portal_ports.items()}
        portals = prepare(app, portal_urls)
        portal_apps = build_portals(app, portals)
        servers.mount({port: app} | {portal_ports[slug]: portal_apps[slug] for slug in tenants})
    except BaseException:
        servers.close()
        raise

    click.echo(f"Member identity provider — demo on {base_url}")
    for slug in tenants:
        tenant = app.extensions["idp"].tenants[slug]
        click.echo(f"  {tenant.brand} ({tenant.portal_name})")
        click.echo(f"    portal   {portal_urls[slug]}")
        click.echo(f"    issuer   {tenant.issuer}")
        for account in (a for a in DEMO_ACCOUNTS if a.tenant == slug):
            click.echo(f"    member   {account.identifier} / {account.password}  ({account.note})")
        if slug in DEMO_REGISTRATIONS:
            click.echo(f"    register {DEMO_REGISTRATIONS[slug]}")
    click.echo(f"  Outbox (emails, SMS and letters sent): {base_url}/_outbox")
    if database.startswith("sqlite:///"):
        click.echo(f"  Data: {database.removeprefix('sqlite:///')}, signing keys: {keys_dir}/")
    click.echo("Press Ctrl-C to stop.")
    delivery = DemoWorker(app).start()
    servers.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        servers.stop()
        delivery.stop()

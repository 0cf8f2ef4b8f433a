"""`idp catcher`: catch the messages the provider would send through HTTP channels, for trials."""

from __future__ import annotations

import click


@click.command("catcher")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container only).")
@click.option("--port", default=8026, show_default=True, type=click.IntRange(1, 65535))
def group(host: str, port: int) -> None:
    """Catch JSON POSTs for trials (SMS gateway, letters): POST /sms, see them at /.

    Point IDP_SMS_GATEWAY_URL at http://HOST:PORT/sms; any other channel posts to
    its own path (/letter…). Messages are kept in memory (the last 500), listed
    newest first at http://HOST:PORT/ and as JSON at /<channel>.json; each one
    is also printed here. For trials only: codes are shown to whoever reaches it.
    """
    from idp.catcher import Catcher, make_server

    try:
        server = make_server(host, port, Catcher(), echo=lambda line: click.echo(line))
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port)") from None
    click.echo(f"catching JSON POSTs on http://{host}:{port}/<channel> (SMS: /sms); "
               f"caught messages at http://{host}:{port}/; Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        server.server_close()

"""What `idp demo` prepares and serves: both tenants, their portals, demo accounts.

``prepare`` is idempotent: it migrates the database, makes sure signing keys
exist, registers one first-party portal client per tenant (with a fresh
secret each run) and creates the demo accounts if they are missing.
``DemoServers`` runs the provider and the two portals on local ports, ``DemoWorker``
the delivery of emails, SMS and letters (``idp outbox work``) in a thread of the same process.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
from dataclasses import dataclass, replace
from datetime import date
from http import HTTPStatus
from pathlib import Path
from typing import Any, TextIO

from flask import Flask
from sqlalchemy import select
from werkzeug.serving import (
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from idp import schema
from idp.accounts.models import Account
from idp.accounts.services import create_account
from idp.channels import worker
from idp.db import connect_args
from idp.demo.portal import create_portal
from idp.oidc.clients import find_client, register_client, remove_client
from idp.registry.importer import import_members
from idp.registry.models import Member
from idp.web.headers import SECURITY_HEADERS, UNCACHED
from idp.wiring import worker_tasks


@dataclass(frozen=True)
class DemoAccount:
    tenant: str
    identifier: str
    password: str
    given_name: str
    family_name: str
    email: str | None
    member_number: str
    note: str
    legacy: bool = False


DEMO_ACCOUNTS = (
    DemoAccount("malakoff", "jeanne.martin@example.org", "Demo-Malakoff-2026!", "Jeanne", "Martin",
                "jeanne.martin@example.org", "12345678", "signs in with her email"),
    DemoAccount("malakoff", "11223344", "Demo-Legacy-2026!", "Charles-Henri", "D'Artagnan",
                "charles-henri.dartagnan@example.org", "11223344",
                "legacy account: signs in with his member number, then moves to his email",
                legacy=True),
    DemoAccount("miel", "87654321", "Demo-Miel-2026!", "Étienne", "Lefèvre",
                "etienne.lefevre@example.org", "87654321", "signs in with his member number"),
)


# Registry members without an account, to try "Créer mon compte" (config/demo/members-*.csv).
DEMO_REGISTRATIONS = {
    "malakoff": "member number 23456789, Jean-Pierre Dupont-Morel, born 23/11/1949, mobile "
                "06 12 34 56 78; by post (no contact on file): 77889900, François-Xavier "
                "Müller, born 25/05/1958",
    "miel": "NIR 2 62 08 2A 004 036 07, Françoise N'Diaye, born 30/08/1962 in 2A, mobile "
            "07 81 22 33 44; by post (no contact on file): NIR 1 61 10 06 088 090 49, Éric "
            "Bouchard, born 05/10/1961 in 06",
}


@dataclass(frozen=True)
class Portal:
    tenant: str
    url: str
    client_id: str
    secret: str


def portal_client_id(tenant: str) -> str:
    return f"{tenant}-demo-portal"


# The checkout's configuration, wherever the demo is started from.
CHECKOUT_CONFIG = Path(__file__).resolve().parents[2] / "config"
DEMO_REGISTRY = CHECKOUT_CONFIG / "demo"
DEMO_TENANTS = CHECKOUT_CONFIG / "tenants"


def prepare(app: Flask, portal_urls: dict[str, str]) -> list[Portal]:
    """Make the database, keys, registry, portal clients and demo accounts ready."""
    services = app.extensions["idp"]
    with services.database.migrating(create=True) as engine:
        schema.upgrade(engine)
    services.keystore.ensure_initialized()
    portals = []
    session = services.database.session()
    try:
        for slug, tenant in services.tenants.items():
            registry = DEMO_REGISTRY / f"members-{slug}.csv"
            if registry.exists():
                # Idempotent: members already imported are left as they are.
                import_members(session, tenant, registry)
        for slug, tenant in list(services.tenants.items()):
            url = portal_urls[slug]
            if not tenant.portal_url:
                # The demo portal is the brand's portal: the account page, the welcome after an
                # activation and the signed-out page lead back to it.
                services.tenants[slug] = replace(tenant, portal_url=f"{url}/")
            client_id = portal_client_id(slug)
            # A fresh secret every run: the portal process only knows the new one.
            if find_client(session, client_id) is not None:
                remove_client(session, client_id)
            _client, secret = register_client(
                session, tenant, name=f"{tenant.brand} — {tenant.portal_name} (démo)",
                redirect_uris=[f"{url}/callback"], post_logout_redirect_uris=[f"{url}/"],
                backchannel_logout_uri=f"{url}/backchannel-logout",
                auth_method="client_secret_basic", first_party=True, client_id=client_id,
                require_pushed_authorization_requests=True,
            )
            if secret is None:  # client_secret_basic always gets one; only key and public clients do not
                raise RuntimeError(f"{client_id} was registered without a client secret")
            portals.append(Portal(slug, url, client_id, secret))
        for demo in DEMO_ACCOUNTS:
            exists = session.scalar(select(Account.id).where(
                Account.tenant == demo.tenant, Account.member_number == demo.member_number))
            if exists is None:
                account = create_account(
                    session, services.hasher, services.tenants[demo.tenant],
                    given_name=demo.given_name, family_name=demo.family_name, password=demo.password,
                    email=demo.email, member_number=demo.member_number,
                    birthdate=date(1956, 4, 2), phone_number="+33612345688",
                    legacy_login=demo.legacy,
                )
                account.member_id = session.scalar(select(Member.id).where(
                    Member.tenant == demo.tenant, Member.member_number == demo.member_number))
                if services.tenants[demo.tenant].communication_preferences:
                    # An established member: the first-sign-in page is for new registrations.
                    account.preferences = {"statements": "email", "letters": "post",
                                           "marketing": False}
        session.commit()
    finally:
        session.close()
    return portals


def build_portals(app: Flask, portals: list[Portal]) -> dict[str, Flask]:
    tenants = app.extensions["idp"].tenants
    return {
        portal.tenant: create_portal(
            tenant=portal.tenant, brand=tenants[portal.tenant].brand,
            portal_name=tenants[portal.tenant].portal_name, issuer=tenants[portal.tenant].issuer,
            client_id=portal.client_id, client_secret=portal.secret, base_url=portal.url,
            primary_color=tenants[portal.tenant].primary_color,
        )
        for portal in portals
    }


class DemoServers:
    """The provider and the portals, each on its own local port, in threads.

    The ports are bound when this is built, so that a port already taken fails
    before anything else is done; the applications may be given then, or later
    with ``mount`` (the portals' apps need their clients, which ``prepare``
    registers only once the ports are known to be ours).
    """

    def __init__(self, host: str, apps: dict[int, Flask] | list[int],
                 names: dict[int, str] | None = None):
        self.servers: dict[int, BaseWSGIServer] = {}
        try:
            for port in apps:
                # Each server names itself on its log lines: "provider :5000", "portal miel :5002".
                name = f"{(names or {}).get(port, 'server')} :{port}"
                handler = type("RequestHandler", (DemoRequestHandler,), {"server_name_in_log": name})
                with _listening(host, port) as listener:
                    self.servers[port] = make_server(host, port, _not_ready, threaded=True,
                                                     request_handler=handler, fd=listener.fileno())
        except BaseException:
            self.close()
            raise
        if isinstance(apps, dict):
            self.mount(apps)
        self.threads: list[threading.Thread] = []

    def mount(self, apps: dict[int, Flask]) -> None:
        for port, app in apps.items():
            self.servers[port].app = app

    def start(self) -> None:
        for server in self.servers.values():
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
        self.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def close(self) -> None:
        for server in self.servers.values():
            server.server_close()


# The colour of a status code at a terminal, as Werkzeug's own log gives it.
_STATUS_COLOURS = {"1": "1", "2": "0", "3": "36", "4": "33", "5": "1;31"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DemoRequestHandler(WSGIRequestHandler):
    """Werkzeug's request lines, each naming the server that answered; without a query string
    (callback URLs carry ``code`` and ``state``); in colour only at a terminal. The server's own
    refusals carry the security headers."""

    server_name_in_log = "server"
    _refusing = False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # What the server refuses before the application sees it (a request line or a header
        # field over 64 KiB, more than a hundred fields) has the headers of the provider's own
        # answers (SPEC §9), as the reverse proxy adds them to the production server's.
        self._refusing = True
        super().send_error(code, message, explain)

    def end_headers(self) -> None:
        if self._refusing:
            for name, value in (*SECURITY_HEADERS, *UNCACHED):
                self.send_header(name, value)
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = str(code.value if isinstance(code, HTTPStatus) else code)
        # Query strings are dropped by the redacting filter of the "werkzeug" logger
        # (idp.logs); the request line is sent plain so that it can find them.
        self.log("info", '"%s" %s %s', self.requestline, status, size)

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.ERROR if type == "error" else logging.INFO
        request_log().log(level, "[%s] %s - - [%s] " + message, self.server_name_in_log,
                          self.address_string(), self.log_date_time_string(), *args)


class _StandardError(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged; plain text in files and pipes,
    the status code in colour at a terminal."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        text = _ANSI.sub("", super().format(record))
        if not _is_terminal(sys.stderr):
            return text
        match = re.search(r'" (\d)(\d\d) ', text)
        if match is None:
            return text
        colour = _STATUS_COLOURS.get(match[1], "0")
        start, end = match.start(1), match.end(2)
        return f"{text[:start]}\x1b[{colour}m{text[start:end]}\x1b[0m{text[end:]}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def request_log() -> logging.Logger:
    """The "werkzeug" logger, with one handler of the demo's on standard error (Werkzeug would
    add its own, which colours lines whatever the output is)."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(handler, _StandardError) for handler in logger.handlers):
        logger.addHandler(_StandardError())
    # Unless a level was chosen for it (the root's, WARNING, would hide every request line).
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


class DemoWorker:
    """``idp outbox work`` in a thread: pages never send, even in the demo.

    Woken by the in-process bell after each commit that queued messages (the demo runs
    on SQLite, which has no notifications), so the outbox page shows a code within a
    second; it also looks at the queue every ``interval`` seconds for retries.
    """

    def __init__(self, app: Flask, *, interval: float = 5.0):
        self.app = app
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)

    def start(self) -> DemoWorker:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        services = self.app.extensions["idp"]
        database = services.database
        with self.app.app_context(), database.session() as session:
            worker.run(services.channels.messages(session),
                       worker.Wakeups(database.engine, connect_args(database.timeouts)),
                       self.stopping, interval=self.interval, batch=100,
                       report=lambda _batch: None, on_database_error=lambda _exc: None,
                       work=lambda worker_session: worker_tasks(services, worker_session))


def _listening(host: str, port: int) -> socket.socket:
    """A socket bound to the port and listening; OSError if it is taken.

    Bound here rather than by werkzeug, which prints its own message and exits
    the process when a port is taken.
    """
    family = select_address_family(host, port)
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(get_sockaddr(host, port, family))
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    # The server listens on its own duplicate; closing this one on leaving keeps that open.
    return listener


def _not_ready(_environ, start_response):
    """What a bound port answers before its application is mounted (never served in practice:
    the servers start once every application is mounted)."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
    return [b"starting\n"]

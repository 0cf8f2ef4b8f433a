"""`idp demo` delivers without a separate worker: its own worker thread, woken at each
commit, puts a message in the outbox within a second (pages never send, even there)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, select

from idp.channels.models import Message
from tests.conftest import ROOT
from tests.flows import csrf_token
from tests.servers import free_port


def test_the_demo_delivers_what_its_pages_queue(tmp_path):
    port = free_port()
    while any(_taken(number) for number in (port + 1, port + 2)):
        port = free_port()
    database = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    environment |= {"IDP_KEYS_DIR": str(tmp_path / "keys"),
                    "IDP_TENANTS_DIR": str(ROOT / "config" / "tenants"),
                    "IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_MEMORY_COST": "1024",
                    # Plain HTTP: a Secure cookie would not come back from this client.
                    "IDP_COOKIE_SECURE": "false"}
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(  # noqa: S603 - the idp command of this environment
        [str(Path(sys.executable).with_name("idp")), "demo", "--port", str(port),
         "--database", database], cwd=tmp_path, env=environment, stdout=log,
        stderr=subprocess.STDOUT)
    base = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        browser = requests.Session()
        page = browser.get(f"{base}/malakoff/forgot-password", timeout=10)
        asked = browser.post(f"{base}/malakoff/forgot-password", timeout=10, data={
            "identifier": "jeanne.martin@example.org", "csrf_token": csrf_token(page.content)})
        assert asked.status_code == 200
        engine = create_engine(database)
        deadline = time.monotonic() + 2
        while True:
            with engine.connect() as connection:
                status = connection.scalar(select(Message.status))
            if status == "sent" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        engine.dispose()
        assert status == "sent", (tmp_path / "demo.log").read_text()
    finally:
        demo.terminate()
        demo.wait(timeout=15)
        log.close()


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False

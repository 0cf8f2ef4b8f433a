"""`idp demo` takes its ports before anything else: a second demo started while one runs
fails on the port and leaves the running demo's portal clients as they are (SPEC §11)."""

from __future__ import annotations

import requests
from sqlalchemy import select

from idp.demo.setup import portal_client_id
from idp.oidc.models import Client
from tests.conftest import ROOT


def _portal_clients(db) -> dict[str, str | None]:
    db.rollback()
    ids = [portal_client_id(slug) for slug in ("malakoff", "miel")]
    return dict(db.execute(
        select(Client.client_id, Client.secret_digest).where(Client.client_id.in_(ids))).all())


def test_a_second_demo_fails_on_the_port_and_keeps_the_running_demos_clients(
        live, runner, db, settings, tmp_path, monkeypatch):
    before = _portal_clients(db)
    assert len(before) == 2
    monkeypatch.setenv("IDP_KEYS_DIR", str(tmp_path / "second-demo-keys"))
    monkeypatch.setenv("IDP_TENANTS_DIR", str(ROOT / "config" / "tenants"))
    port = int(live.base_url.rsplit(":", 1)[1])

    result = runner.invoke(args=["demo", "--port", str(port),
                                 "--database", settings["database_url"]])

    assert result.exit_code != 0
    assert _portal_clients(db) == before
    assert "Traceback" not in result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: cannot listen") and "--port" in line
    assert not (tmp_path / "second-demo-keys").exists()
    # The running demo's portal still signs members in with the secret it holds.
    portal = requests.get(f"{live.portals['malakoff']}/login", allow_redirects=False, timeout=10)
    assert portal.status_code in (302, 303)

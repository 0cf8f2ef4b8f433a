"""`idp demo` takes its ports before anything else: a second demo started while one runs
fails on the port and leaves the running demo's portal clients as they are (SPEC §11)."""

from __future__ import annotations

import requests
from sqlalchemy import select

from idp import create_app
from idp.config import ConfigError
from idp.demo.setup import portal_client_id
from idp.oidc.models import Client
from tests.conftest import ROOT, serving


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


def _log_of_a_request(app, capfd, path: str) -> str:
    with serving(app, "provider") as port:
        requests.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False, timeout=10)
    return capfd.readouterr().err


def test_the_demo_log_names_its_server_and_in_a_file_has_no_colour_and_no_query(app, capfd):
    err = _log_of_a_request(app, capfd, "/nowhere/callback?code=SECRETCODE&state=STATEVALUE")
    [line] = [line for line in err.splitlines() if "/nowhere/callback" in line]
    assert line.startswith("[provider :")
    assert '"GET /nowhere/callback HTTP/1.1" 404' in line
    assert "\x1b" not in err
    assert "SECRETCODE" not in err and "STATEVALUE" not in err


def test_the_demo_log_keeps_colour_at_a_terminal(app, capfd, monkeypatch):
    monkeypatch.setattr("idp.demo.setup._is_terminal", lambda _stream: True)
    err = _log_of_a_request(app, capfd, "/nowhere")
    assert '"GET /nowhere HTTP/1.1" \x1b[33m404\x1b[0m' in err


def test_the_demo_keeps_its_keys_under_var_not_in_the_checkouts_keys(runner, monkeypatch):
    monkeypatch.delenv("IDP_KEYS_DIR", raising=False)
    built = {}

    def stop_once_configured(overrides):
        built.update(overrides)
        raise ConfigError("stopped by the test")

    monkeypatch.setattr("idp.create_app", stop_once_configured)
    result = runner.invoke(args=["demo"])
    assert "stopped by the test" in result.output
    assert built["keys_dir"] == "var/demo-keys"
    assert built["database_url"] == "sqlite:///var/demo.sqlite3"
    assert built["tenants_dir"] == str(ROOT / "config" / "tenants")
    assert "/var/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_demo_runs_from_any_directory(runner, monkeypatch, tmp_path):
    # Its tenants are the checkout's, as its demo members are, not those of the working directory.
    monkeypatch.delenv("IDP_TENANTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    built = {}

    def configured(overrides):
        built["tenants"] = sorted(create_app({**overrides, "database_url": "sqlite://"})
                                  .extensions["idp"].tenants)
        raise ConfigError("stopped by the test")

    monkeypatch.setattr("idp.create_app", configured)
    result = runner.invoke(args=["demo", "--keys-dir", str(tmp_path / "keys")])

    assert "stopped by the test" in result.output, result.output
    assert built["tenants"] == ["malakoff", "miel"]

"""The files around the code: CI script, README, compose file, image and server settings.

They are not run by the suite (no Docker engine in CI), so these checks catch
the mistakes that would otherwise surface only on a fresh clone or a deploy.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from idp.config import Settings
from idp.logs import JsonFormatter
from idp.web import server
from tests.servers import missing

ROOT = Path(__file__).resolve().parent.parent
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/idp demo"
TEST_COMMAND = ("python3 -m venv .venv && .venv/bin/pip install -r requirements/test.txt "
                "&& .venv/bin/pip install --no-deps -e . && .venv/bin/pytest")


def _section(markdown: str, heading: str) -> str:
    """The text under a level-2 heading, up to the next one."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_ci_run_is_an_executable_strict_bash_script():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable (chmod +x)"
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/bash")
    commands = [line for line in lines[1:] if line.strip() and not line.lstrip().startswith("#")]
    assert commands[0] == "set -euo pipefail", "strict mode must come before any command"


def test_ci_run_runs_the_readme_test_command_then_ruff():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q -r requirements/test.txt",
        ".venv/bin/pip install -q --no-deps -e .",
        ".venv/bin/pytest",
        ".venv/bin/ruff check",
    ]
    found = [re.search(rf"^[ \t]*{re.escape(step)}", script, re.M) for step in steps]
    assert None not in found, dict(zip(steps, found, strict=True))
    positions = [match.start() for match in found]
    assert positions == sorted(positions), "venv, locked dependencies, the package, pytest, then ruff"


def test_readme_quick_start_gives_the_two_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = _section(readme, "Quick start")
    assert f"```sh\n{RUN_COMMAND}\n```" in quick_start
    assert f"```sh\n{TEST_COMMAND}\n```" in quick_start
    assert readme.index("## Quick start") == readme.index("\n## ") + 1, "Quick start comes first"


def test_readme_documents_every_setting():
    configuration = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Configuration")
    documented = set(re.findall(r"^\| `(IDP_[A-Z0-9_]+)` \|", configuration, re.M))
    expected = {f"IDP_{field.name.upper()}" for field in dataclasses.fields(Settings)}
    expected.discard("IDP_EXTRA")  # not an environment variable
    assert expected - documented == set(), "settings missing from the README's table"
    assert documented - expected == set(), "README documents settings that do not exist"


def _compose() -> dict:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "\t" not in text, "YAML forbids tabs for indentation"
    return yaml.safe_load(text)


def test_compose_file_has_the_stack_and_demands_the_secrets():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "mailcatcher", "catcher", "migrate", "idp-1",
                             "idp-2", "proxy", "worker"}
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    environment = compose["x-idp-environment"]
    assert environment["IDP_ENV"] == "production"
    for secret in ("IDP_SECRET_KEY", "IDP_METRICS_TOKEN"):
        assert environment[secret].startswith(f"${{{secret}:?"), f"compose must stop without {secret}"
    assert services["worker"]["environment"] == environment
    assert services["worker"]["command"] == ["idp", "outbox", "work"]
    assert "idp db upgrade" in " ".join(services["migrate"]["command"])
    assert "idp-keys:/app/keys" in services["migrate"]["volumes"]
    assert "idp-keys" in compose["volumes"]


def test_compose_runs_two_nodes_sharing_state_behind_the_proxy_only():
    services = _compose()["services"]
    one, two = services["idp-1"], services["idp-2"]
    assert one == two, "the nodes are interchangeable"
    assert one["build"] == "."
    assert one["environment"]["IDP_TRUSTED_PROXIES"] == "1"
    assert one["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert "idp-keys:/app/keys" in one["volumes"]
    assert "ports" not in one, "nodes are reached through the proxy only"
    assert one["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis"):
        assert one["depends_on"][name]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(one["healthcheck"]["test"])
    assert one["sysctls"]["net.ipv4.tcp_migrate_req"] == 1, "no connection reset when a worker is replaced"
    grace = int(one["stop_grace_period"].removesuffix("s"))
    assert grace > server.parse_args([]).graceful_timeout, "requests in flight finish on docker stop"
    proxy = services["proxy"]
    assert {"idp-1", "idp-2"} <= set(proxy["depends_on"])
    mounted = {volume.split(":")[0] for volume in proxy["volumes"]}
    assert {"./config/nginx/nginx.conf", "./config/nginx/tls"} <= mounted
    assert (ROOT / "config" / "nginx" / "nginx.conf").is_file()


def test_proxy_sets_the_forwarded_headers_itself_and_hides_metrics():
    config = (ROOT / "config" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream idp \{(.*?)\}", config, re.S).group(1)
    assert re.findall(r"server (\S+):8000", upstream) == ["idp-1", "idp-2"]
    for header, value in [("X-Forwarded-For", "$remote_addr"), ("X-Forwarded-Proto", "$scheme"),
                          ("X-Forwarded-Host", "$host"), ("X-Request-ID", "$request_id")]:
        assert f"proxy_set_header {header} {value};" in config
    assert "$proxy_add_x_forwarded_for" not in config, "a client's own X-Forwarded-For is dropped"
    assert re.search(r"location = /metrics \{\s*return 404;", config)
    assert "access_log off;" in config
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "config/nginx/tls" in ignored, "the TLS private key must stay out of the image"


def test_proxy_configuration_passes_nginx_syntax_check(tmp_path, certificate):
    if shutil.which("nginx") is None:
        missing("nginx is not installed (Debian's nginx package, which .ci/run installs): "
                "syntax not checked")
    # nginx -t resolves upstream names and opens the certificate: point them at local ones.
    config = (ROOT / "config" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    config = re.sub(r"server idp-\d:8000", "server 127.0.0.1:8000", config)
    config = config.replace("/etc/nginx/tls/fullchain.pem", str(certificate.cert_file))
    config = config.replace("/etc/nginx/tls/privkey.pem", str(certificate.key_file))
    config = config.replace("pid /tmp/nginx.pid;", f"pid {tmp_path / 'nginx.pid'};")
    (tmp_path / "nginx.conf").write_text(config, encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - the system's nginx on a file of ours
        [shutil.which("nginx"), "-t", "-q", "-p", str(tmp_path), "-e", "stderr",
         "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_only_the_migrate_service_changes_the_schema():
    """`idp db upgrade` runs in its own one-shot service, never at a node's or a command's start."""
    services = _compose()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ENTRYPOINT" not in dockerfile
    assert "db upgrade" not in " ".join(line for line in dockerfile.splitlines()
                                        if not line.startswith("#"))
    for name, service in services.items():
        run = " ".join(service.get("command", []) + service.get("entrypoint", []))
        assert ("db upgrade" in run) == (name == "migrate"), name
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"


def test_trial_catchers_are_pinned_and_published_on_this_host_only():
    services = _compose()["services"]
    mailpit = services["mailcatcher"]
    assert re.fullmatch(r"axllent/mailpit:v\d+\.\d+\.\d+", mailpit["image"])
    catcher = services["catcher"]
    assert catcher["command"][:2] == ["idp", "catcher"]
    assert "8026/sms" in _compose()["x-idp-environment"]["IDP_SMS_GATEWAY_URL"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    for name in ("mailcatcher", "catcher"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    assert len([port for port in published if not port.startswith("127.0.0.1:")]) == 2, \
        "only the proxy's two ports are public"


def test_readme_says_the_compose_file_needs_compose_v2():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Compose v2" in readme and "docker compose up" in readme
    assert "docker-compose up" not in readme


def test_image_installs_locked_dependencies_before_the_code_once_and_checks_its_health():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    locked = next(i for i, line in enumerate(lines)
                  if "pip install --require-hashes" in line and "requirements/main.txt" in line)
    first_code = next(i for i, line in enumerate(lines) if line.startswith("COPY idp/"))
    assert locked < first_code, "dependencies are installed before the code is copied"
    installs = [line for line in lines if "pip install" in line]
    assert len(installs) == 2 and "--no-deps" in installs[1], "the package is installed once"
    assert "PYTHONPATH" not in dockerfile, "the code runs from its one installed copy"
    assert any(line.startswith("HEALTHCHECK") for line in lines)


def test_lock_files_pin_every_dependency_with_hashes():
    for name in ("main.txt", "test.txt"):
        text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", text, re.M)
        assert pins, name
        assert text.count("--hash=sha256:") >= len(pins), name
    main = set(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) ", (ROOT / "requirements" / "main.txt")
                          .read_text(encoding="utf-8"), re.M))
    test = set(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) ", (ROOT / "requirements" / "test.txt")
                          .read_text(encoding="utf-8"), re.M))
    assert main <= test, "the image runs the versions the tests ran"
    assert {"flask", "sqlalchemy", "authlib"} <= {name.lower() for name, _version in main}


def test_image_runs_unprivileged_and_never_carries_keys():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users, "the image must name its user"
    assert users[-1] not in ("root", "0"), "the service must not run as root"
    # Exec form: the server is PID 1 and gets docker's SIGTERM (graceful stop) itself.
    assert re.search(r'^CMD \["python", "-m", "idp.web.server"\]$', dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "keys" in ignored, "private keys must stay out of the build context"
    assert "README.md" not in ignored, "pyproject.toml names README.md: the build needs it"


def test_server_logs_json_lines_and_leaves_the_access_log_to_the_provider():
    config = server.logging_config("info")
    assert config["formatters"]["json"]["()"] is JsonFormatter
    assert config["handlers"]["json"]["stream"] == "ext://sys.stdout"
    assert config["root"]["handlers"] == ["json"]
    assert config["loggers"]["_granian"]["level"] == "INFO"
    assert config["loggers"]["granian.access"]["handlers"] == []
    assert config["loggers"]["authlib"]["level"] == "INFO", "Authlib logs tokens at DEBUG"
    assert server.parse_args([]).bind == "0.0.0.0:8000"

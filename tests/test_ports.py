"""The suite's servers listen on free ports, found again when one is taken before it is bound."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis
import requests
from sqlalchemy import create_engine, text

from tests import conftest, servers


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _first_found(monkeypatch, module, *ports: int) -> None:
    """``module``'s free_port finds ``ports``, then free ones."""
    found, free = iter(ports), conftest.free_port
    monkeypatch.setattr(module, "free_port", lambda: next(found, None) or free())


def test_a_port_taken_between_its_choice_and_its_bind_is_replaced(monkeypatch, taken):
    _first_found(monkeypatch, conftest, taken)
    demo, [port] = conftest.listening()
    try:
        assert port != taken and list(demo.servers) == [port]
    finally:
        demo.close()


def test_ports_always_taken_end_in_the_error(monkeypatch, taken):
    _first_found(monkeypatch, conftest, *[taken] * conftest.PORT_TRIES)
    with pytest.raises(OSError, match="in use"):
        conftest.listening()


def test_an_smtp_server_whose_port_was_taken_starts_on_another(monkeypatch, taken):
    _first_found(monkeypatch, servers, taken)
    server = conftest.on_free_ports(lambda: servers.SmtpServer().start())
    try:
        assert server.port != taken
        server.sender().send("jeanne@example.fr", "Objet", "Texte", None)
        assert len(server.inbox) == 1
    finally:
        server.stop()


def test_a_redis_server_whose_port_was_taken_starts_on_another(monkeypatch, taken):
    if servers.REDIS_SERVER is None:
        servers.missing("redis-server is not installed")
    _first_found(monkeypatch, servers, taken)
    server = servers.on_a_free_port(servers.RedisServer())
    try:
        assert server.port != taken
        with redis.Redis.from_url(server.url) as client:
            assert client.info("server")["process_id"] == server.process.pid
    finally:
        server.stop()
        server.log.unlink()


def test_a_postgres_cluster_whose_port_was_taken_starts_on_another(monkeypatch, taken):
    if not (servers.PG_BIN / "initdb").exists():
        servers.missing(f"PostgreSQL's initdb is not in {servers.PG_BIN}")
    _first_found(monkeypatch, servers, taken)
    server = servers.on_a_free_port(servers.PostgresServer().init())
    try:
        assert server.port != taken
        engine = create_engine(server.url())
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
        engine.dispose()
    finally:
        server.remove()


def test_a_provider_node_whose_port_was_taken_starts_on_another(monkeypatch, taken, settings, tmp_path):
    _first_found(monkeypatch, servers, taken)
    node = servers.on_a_free_port(servers.ProviderNode(servers.node_environment(settings),
                                                       tmp_path / "node.log"))
    try:
        assert node.port != taken
        assert requests.get(f"{node.url}/healthz", timeout=5).status_code == 200
        assert f"cannot listen on 127.0.0.1:{taken}: Address already in use" in node.log_file.read_text()
    finally:
        node.stop()

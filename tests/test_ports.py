"""The suite's servers listen on free ports, found again when one is taken before it is bound."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

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

"""The suite's servers listen on free ports, found again when one is taken before it is bound."""

from __future__ import annotations

import socket

import pytest

from tests import conftest, servers


def test_a_port_taken_between_its_choice_and_its_bind_is_replaced(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen = iter([taken.getsockname()[1], conftest.free_port()])
        monkeypatch.setattr(conftest, "free_port", lambda: next(chosen))
        servers, [port] = conftest.listening()
        try:
            assert port != taken.getsockname()[1] and list(servers.servers) == [port]
        finally:
            servers.close()


def test_ports_always_taken_end_in_the_error(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(conftest, "free_port", lambda: taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            conftest.listening()


def test_an_smtp_server_whose_port_was_taken_starts_on_another(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen = iter([taken.getsockname()[1], conftest.free_port()])
        monkeypatch.setattr(servers, "free_port", lambda: next(chosen))
        server = conftest.on_free_ports(lambda: servers.SmtpServer().start())
        try:
            assert server.port != taken.getsockname()[1]
            server.sender().send("jeanne@example.fr", "Objet", "Texte", None)
            assert len(server.inbox) == 1
        finally:
            server.stop()

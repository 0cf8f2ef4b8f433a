"""The service registry: one factory per kind of service, found by its class."""

from __future__ import annotations

import pytest

from idp.extensions import ServiceRegistry


class Greeter:
    def __init__(self, name: str, session: object):
        self.name = name
        self.session = session


def test_a_service_is_made_by_its_factory_with_the_collaborators_and_session():
    registry = ServiceRegistry()
    registry.register(Greeter, lambda collaborators, session: Greeter(collaborators, session))
    made = registry.create(Greeter, "collaborators", "session")
    assert (made.name, made.session) == ("collaborators", "session")


def test_an_unknown_service_is_a_lookup_error():
    with pytest.raises(LookupError, match="Greeter"):
        ServiceRegistry().create(Greeter, None, None)


def test_a_kind_has_one_factory():
    registry = ServiceRegistry()
    registry.register(Greeter, lambda _c, s: Greeter("a", s))
    with pytest.raises(ValueError, match="already"):
        registry.register(Greeter, lambda _c, s: Greeter("b", s))

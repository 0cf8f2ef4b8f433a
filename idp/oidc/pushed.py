"""Pushed authorization requests (RFC 9126): the requests kept for their ``request_uri``.

A client posts its authorization request to the pushed authorization request endpoint,
authenticated as at the token endpoint, and receives a ``request_uri`` that stands for it
(``idp.oidc.authorization.push``). The browser then brings only the client id and that
reference to ``/authorize``, which takes the request back here: once, within the lifetime
given to the client, and for that client only. The requests live in the shared store, so
that the push and the browser's visit may reach different nodes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from idp.records import record
from idp.store import Store

# RFC 9126 2.2: a URN whose last part is a random reference, as the RFC's examples.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
MAX_REQUEST_URI_LENGTH = 200


@dataclass
class PushedRequest:
    client_id: str
    # The authorization request's parameters as pushed, client authentication left out:
    # [name, value] pairs, as an interaction keeps them.
    params: list[list[str]]


class PushedRequests:
    """The pushed requests of every tenant, each usable once within ``ttl`` seconds."""

    def __init__(self, store: Store, ttl: int):
        self.store = store
        self.ttl = ttl

    @staticmethod
    def _key(tenant: str, reference: str) -> str:
        return f"par:{tenant}:{reference}"

    def keep(self, tenant: str, client_id: str, params: list[list[str]]) -> str:
        """Keep a validated request; return the ``request_uri`` that stands for it."""
        reference = secrets.token_urlsafe(32)
        request = PushedRequest(client_id=client_id, params=params)
        self.store.set(self._key(tenant, reference), json.dumps(record(request)), self.ttl)
        return REQUEST_URI_PREFIX + reference

    def take(self, tenant: str, request_uri: str, client_id: str | None) -> PushedRequest | None:
        """The request ``request_uri`` stands for, if it is this tenant's, still alive, not used
        yet and pushed by ``client_id`` (RFC 9126 4); it cannot be used again.

        Another client's attempt leaves the request to its owner; of concurrent uses by the
        owner, exactly one gets it (the store's atomic get-and-delete).
        """
        reference = request_uri.removeprefix(REQUEST_URI_PREFIX)
        if (reference == request_uri or not reference or len(request_uri) > MAX_REQUEST_URI_LENGTH
                or not client_id):
            return None
        key = self._key(tenant, reference)
        raw = self.store.get(key)
        if raw is None or PushedRequest(**json.loads(raw)).client_id != client_id:
            return None
        raw = self.store.take(key)
        return PushedRequest(**json.loads(raw)) if raw is not None else None

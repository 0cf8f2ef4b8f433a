"""Interactions: an authorization request parked while the member signs in or consents.

``/authorize`` never shows a page itself. When it needs the member, it stores
the request here under a random id bound to this browser session and redirects
to the hosted page; the page marks what was done and sends the browser to
``/authorize/resume``, which finishes the request (node-oidc-provider's model).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field

from flask import session

from idp.store import Store

MAX_OPEN = 10  # per browser session; older ones are forgotten


@dataclass
class Interaction:
    id: str
    tenant: str
    # The authorization request as received: [name, value] pairs (repeats kept).
    params: list[list[str]]
    # What the member did in this interaction.
    login_done: bool = False
    consent_done: bool = False
    # Why the member is here: "login" or "consent".
    prompt: str = "login"
    reasons: list[str] = field(default_factory=list)
    # The request came through the pushed authorization request endpoint (RFC 9126).
    pushed: bool = False

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


class Interactions:
    def __init__(self, store: Store, ttl: int):
        self.store = store
        self.ttl = ttl

    def _key(self, interaction_id: str) -> str:
        return f"interaction:{interaction_id}"

    def start(self, tenant: str, params: list[list[str]], prompt: str, reasons: list[str], *,
              pushed: bool = False) -> Interaction:
        interaction = Interaction(
            id=secrets.token_urlsafe(24), tenant=tenant, params=params, prompt=prompt, reasons=reasons,
            pushed=pushed,
        )
        self.save(interaction)
        owned = [i for i in session.get("interactions", []) if i != interaction.id]
        session["interactions"] = [*owned[-(MAX_OPEN - 1):], interaction.id]
        return interaction

    def save(self, interaction: Interaction) -> None:
        self.store.set(self._key(interaction.id), json.dumps(asdict(interaction)), self.ttl)

    def expires_in(self, interaction: Interaction) -> int:
        """Seconds before the request is forgotten (0 when it already is)."""
        return self.store.ttl(self._key(interaction.id))

    def load(self, interaction_id: str | None, tenant: str) -> Interaction | None:
        """The interaction, if it exists, is this tenant's and belongs to this browser."""
        if not interaction_id or interaction_id not in session.get("interactions", []):
            return None
        raw = self.store.get(self._key(interaction_id))
        if not raw:
            return None
        interaction = Interaction(**json.loads(raw))
        return interaction if interaction.tenant == tenant else None

    def finish(self, interaction: Interaction) -> None:
        self.store.delete(self._key(interaction.id))
        session["interactions"] = [i for i in session.get("interactions", []) if i != interaction.id]

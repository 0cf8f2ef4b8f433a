"""Interactions: an authorization request parked while the member signs in or consents.

``/authorize`` never shows a page itself. When it needs the member, it parks the request
under a random id in this browser's session and redirects to the hosted page; the page
tells what was done (``InteractionApi.finish``, node-oidc-provider's model), and the
request resumes in that page's answer. ``/authorize/resume`` resumes one too, for a browser
an earlier version sent there.

The parked requests live in the session record itself, next to the sign-in in progress
(``idp.signin.state``), so a hosted page reads the browser's state once and writes it at
most once. Each keeps its own lifetime, restarted whenever it is saved; a browser holds
at most ``MAX_OPEN`` of them at a time (several tabs each resume their own).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from flask import session

from idp.records import record

MAX_OPEN = 10  # per browser session; older ones are forgotten
# The session key holding this browser's parked requests, by id, oldest first.
SESSION_KEY = "parked"


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
    # When the request is forgotten (time.time()), unless saved again before.
    expires_at: float = 0.0

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


class Interactions:
    def __init__(self, ttl: int):
        self.ttl = ttl

    def start(self, tenant: str, params: list[list[str]], prompt: str, reasons: list[str], *,
              pushed: bool = False) -> Interaction:
        interaction = Interaction(
            id=secrets.token_urlsafe(24), tenant=tenant, params=params, prompt=prompt, reasons=reasons,
            pushed=pushed,
        )
        self.save(interaction)
        return interaction

    def save(self, interaction: Interaction) -> None:
        """Keep the interaction in this browser's session, with its whole lifetime again."""
        now = time.time()
        interaction.expires_at = now + self.ttl
        entries = {key: entry for key, entry in _entries().items()
                   if entry["expires_at"] > now and key != interaction.id}
        kept = list(entries.items())[-(MAX_OPEN - 1):]
        session[SESSION_KEY] = {**dict(kept), interaction.id: record(interaction)}

    def expires_in(self, interaction: Interaction) -> int:
        """Seconds before the request is forgotten (0 when it already is)."""
        return max(0, int(interaction.expires_at - time.time()))

    def load(self, interaction_id: str | None, tenant: str) -> Interaction | None:
        """The interaction, if it exists, is this tenant's and belongs to this browser."""
        entry = _entries().get(interaction_id or "")
        if entry is None or entry["expires_at"] <= time.time():
            return None
        interaction = Interaction(**entry)
        return interaction if interaction.tenant == tenant else None

    def finish(self, interaction: Interaction) -> None:
        entries = _entries()
        if interaction.id in entries:
            session[SESSION_KEY] = {key: entry for key, entry in entries.items()
                                    if key != interaction.id}


def _entries() -> dict[str, dict]:
    return session.get(SESSION_KEY) or {}

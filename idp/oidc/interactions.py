"""Interactions: an authorization request parked while the member signs in or consents.

When ``/authorize`` needs the member, it parks the request under a random id in this
browser's session and answers with the hosted page: the page itself where one is shown in
place (``shown_in_place``: the sign-in page, one round trip fewer for the member), a redirect
to it otherwise. A reload of the page asks again; a pushed request's reference is taken once
(RFC 9126), so in the browser that brought it, it keeps showing its parked request. The page
tells what was done (``InteractionApi.finish``, node-oidc-provider's model), and the request
resumes in that page's answer. ``/authorize/resume`` resumes one too, for a browser an
earlier version sent there.

The parked requests live in the session record itself, next to the sign-in in progress
(``idp.signin.state``), so a hosted page reads the browser's state once and writes it at
most once. Each keeps its own lifetime, restarted whenever it is saved; a browser holds
at most ``MAX_OPEN`` of them at a time (several tabs each resume their own).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import session
from flask.typing import ResponseReturnValue

from idp.records import record

MAX_OPEN = 10  # per browser session; older ones are forgotten
# The session key holding this browser's parked requests, by id, oldest first.
SESSION_KEY = "parked"
# The session key holding, by the reference a pushed request came by, the id it is parked under.
PUSHED_KEY = "parked_pushed"

Page = Callable[["Interaction"], ResponseReturnValue]
# The pages shown in the answer to the request that parks an interaction, by prompt.
_IN_PLACE: dict[str, Page] = {}


def shown_in_place(prompt: str) -> Callable[[Page], Page]:
    """Declares the page that shows a new interaction of ``prompt`` in the very answer that
    parks it, rather than at its own address after a redirect."""

    def register(page: Page) -> Page:
        _IN_PLACE[prompt] = page
        return page

    return register


def page_in_place(prompt: str) -> Page | None:
    return _IN_PLACE.get(prompt)


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
              pushed: bool = False, request_uri: str | None = None) -> Interaction:
        """Park a request; a pushed one also under the ``request_uri`` the browser brought
        (``pushed_as``)."""
        interaction = Interaction(
            id=secrets.token_urlsafe(24), tenant=tenant, params=params, prompt=prompt, reasons=reasons,
            pushed=pushed,
        )
        self.save(interaction)
        if request_uri is not None:
            parked = _entries()
            references = {reference: key for reference, key in (session.get(PUSHED_KEY) or {}).items()
                          if key in parked}
            session[PUSHED_KEY] = {**references, request_uri: interaction.id}
        return interaction

    def pushed_as(self, request_uri: str, tenant: str) -> Interaction | None:
        """The request this browser parked when it brought ``request_uri``, while it is parked."""
        return self.load((session.get(PUSHED_KEY) or {}).get(request_uri), tenant)

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

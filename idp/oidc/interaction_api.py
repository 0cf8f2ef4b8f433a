"""What the hosted pages may tell the protocol about an interaction, and nothing more.

node-oidc-provider's ``interactionFinished`` model: a page that did what the interaction
asked calls ``finish(interaction, login=…)`` or ``finish(interaction, consent=…)`` and
sends the browser where it says; a member who refuses calls ``abort``. Pages never set
flags on interactions; consent is stored here, by the protocol that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import events
from idp.extensions import single_statements
from idp.oidc import authorization
from idp.oidc.claims import (
    InvalidClaimsParameter,
    claims_released_by,
    parse_claims_parameter,
    requested_claim_names,
)
from idp.oidc.clients import current_client
from idp.oidc.interactions import Interaction, Interactions
from idp.oidc.models import Client, Consent


@dataclass(frozen=True)
class Login:
    """The member of ``account_id`` signed in (the session already says so)."""

    account_id: str


@dataclass(frozen=True)
class ConsentRequest:
    """What the consent page asks: the scopes, and the claims asked by name that they leave out."""

    scopes: list[str]
    claims: list[str]


@dataclass(frozen=True)
class ConsentGiven:
    """The member allowed ``client_id`` the ``scopes`` and ``claims`` shown to them."""

    account_id: str
    client_id: str
    scopes: list[str]
    claims: list[str] = field(default_factory=list)


class InteractionApi:
    def __init__(self, interactions: Interactions, session: Session):
        self.interactions = interactions
        self.session = session

    def load(self, interaction_id: str | None, tenant: str) -> Interaction | None:
        """The interaction, if it exists, is this tenant's and belongs to this browser."""
        return self.interactions.load(interaction_id, tenant)

    def client(self, interaction: Interaction) -> Client | None:
        """The client whose request is parked, as it is now (its name and scopes, for the
        consent page)."""
        return current_client(single_statements(), interaction.tenant, interaction.param("client_id") or "")

    def consent_request(self, interaction: Interaction, client: Client) -> ConsentRequest:
        """The scopes of the parked request the client may have, and the claims it asks by name
        (OIDC Core 5.5) that those scopes do not already release: the member consents to both."""
        scopes = [s for s in dict.fromkeys((interaction.param("scope") or "").split()) if s in client.scopes]
        try:
            claims = parse_claims_parameter(interaction.param("claims"))
        except InvalidClaimsParameter:
            claims = None  # refused by the authorization endpoint before any interaction
        released = claims_released_by(scopes)
        named = [name for name in requested_claim_names(claims, client.scopes) if name not in released]
        return ConsentRequest(scopes, named)

    def finish(self, interaction: Interaction, *, login: Login | None = None,
               consent: ConsentGiven | None = None) -> ResponseReturnValue:
        """Record what the member did, and resume the authorization request in this answer: the
        code for the client, or the page the request needs next (consent, a stronger sign-in).
        The browser goes straight back to the client, without a hop through the provider."""
        if login is not None:
            interaction.login_done = True
        if consent is not None:
            self._store_consent(interaction.tenant, consent)
            interaction.consent_done = True
        return authorization.authorize(interaction.params, interaction)

    def abort(self, interaction: Interaction):
        """The member refused: the client gets access_denied (RFC 6749 4.1.2.1)."""
        return authorization.deny(interaction)

    def _store_consent(self, tenant: str, consent: ConsentGiven) -> None:
        row = self.session.scalar(select(Consent).where(
            Consent.account_id == consent.account_id, Consent.client_id == consent.client_id))
        if row is None:
            row = Consent(account_id=consent.account_id, client_id=consent.client_id, scopes=[])
            self.session.add(row)
        row.scopes = sorted(set(row.scopes) | set(consent.scopes))
        row.claims = sorted(set(row.claims or ()) | set(consent.claims))
        events.record_event(self.session, events.CONSENT_GRANTED, tenant=tenant,
                            account_id=consent.account_id, client_id=consent.client_id,
                            scopes=consent.scopes, claims=consent.claims)

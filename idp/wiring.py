"""The services' factories, registered once per app: what each needs, in one place.

Views and commands find a service by its class (``idp.extensions.find_service``); this
module is the only one that knows how each is built.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.accounts.recovery import Recovery, carry_out_requests
from idp.accounts.registration import Registrations
from idp.accounts.services import EndedSessions, LegacyCosts, Reauthentication
from idp.channels.models import Message
from idp.channels.services import Messages
from idp.extensions import ServiceRegistry, Services, current_tenant
from idp.mfa.services import OtpService, TrustedDevices
from idp.oidc.interaction_api import InteractionApi
from idp.oidc.interactions import Interactions
from idp.oidc.pushed import PushedRequests
from idp.oidc.sessions import ProviderSessions
from idp.passkeys.services import Passkeys
from idp.signin.services import CodeSender, SignIn
from idp.tokens import TRUSTED_DEVICE, TokenService


def _otp(c: Services) -> OtpService:
    return OtpService(c.store, c.settings.secret_key.encode())


def _trusted_devices(c: Services, s: Session) -> TrustedDevices:
    return TrustedDevices(s, TokenService(c.settings.secret_key, TRUSTED_DEVICE))


def _interactions(c: Services) -> Interactions:
    return Interactions(c.settings.interaction_ttl)


def _code_sender(c: Services, s: Session) -> CodeSender:
    return CodeSender(s, c.store, _otp(c), c.channels.messages(s))


def register_services(registry: ServiceRegistry) -> None:
    registry.register(Messages, lambda c, s: c.channels.messages(s))
    registry.register(OtpService, lambda c, _s: _otp(c))
    registry.register(TrustedDevices, _trusted_devices)
    registry.register(Passkeys, lambda c, s: Passkeys(s, c.store))
    registry.register(Interactions, lambda c, _s: _interactions(c))
    registry.register(PushedRequests, lambda c, _s: PushedRequests(c.store, c.settings.pushed_request_ttl))
    registry.register(InteractionApi, lambda c, s: InteractionApi(_interactions(c), s))
    registry.register(CodeSender, _code_sender)
    registry.register(Reauthentication, lambda c, s: Reauthentication(s, c.store, c.hasher))
    registry.register(ProviderSessions, lambda c, s: ProviderSessions(
        s, idle=c.settings.session_idle_timeout, absolute=c.settings.session_absolute_timeout))
    registry.register(EndedSessions, lambda c, _s: EndedSessions(
        c.store, c.settings.session_absolute_timeout))
    # One per app: it keeps what it read for every request of the process.
    legacy_costs = LegacyCosts()
    registry.register(SignIn, lambda c, s: SignIn(s, c.store, c.hasher, legacy_costs,
                                                  _trusted_devices(c, s), _code_sender(c, s),
                                                  c.channels.messages(s)))
    # Tenant-bound: made for the tenant of the request being served.
    registry.register(Recovery, lambda c, s: Recovery(s, current_tenant(), c.channels.messages(s),
                                                      c.settings.secret_key))
    registry.register(Registrations, lambda c, s: Registrations(
        s, current_tenant(), c.channels.messages(s), c.settings.secret_key))


def worker_tasks(c: Services, s: Session) -> list[Message]:
    """What pages recorded for the worker to do after them (recovery requests), carried out on
    the session ``s``: the worker's (``idp outbox work``, the demo's), or a fresh one right
    after the request in the "inline" delivery mode. The messages it queued."""
    return carry_out_requests(s, c.tenants, c.channels.messages(s), c.settings.secret_key)

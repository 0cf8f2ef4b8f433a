"""The channels as the app assembles them: the senders its configuration names, and messages
rendered with the app's Jinja environment in the reader's language.

Flask only here: ``idp.channels.services`` takes its renderer and the request's language
as plain callables, so that it runs the same under a command, a worker or a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context, has_request_context
from flask_babel import force_locale, get_locale
from jinja2 import Template
from sqlalchemy.orm import Session, sessionmaker

from idp.channels import dispatch
from idp.channels.models import Message
from idp.channels.senders import (
    EmailSender,
    HttpLogoutSender,
    LetterSender,
    LogoutSender,
    OutboxLetterSender,
    SmsSender,
    build_letter_sender,
    build_senders,
)
from idp.channels.services import Clock, CurrentLocale, Frames, Messages, Render
from idp.config import Settings
from idp.db import utcnow


def _flask_render(names: list[str], locale: str, context: dict[str, Any]) -> str:
    """Render the first existing template of ``names`` in ``locale`` with the app's Jinja
    environment.

    Its loader, autoescaping (on for .html, off for .txt) and ``{% trans %}``
    (Flask-Babel's catalog, here in ``locale`` whatever the pages use), but not
    the pages' context processors: those read the request (locale, language
    links), and messages are also rendered by commands, outside any request.
    """
    with force_locale(locale):
        candidates: list[str | Template] = list(names)
        return current_app.jinja_env.get_or_select_template(candidates).render(context)


def _request_locale() -> str | None:
    """The language the current request's pages are shown in (``idp.web.select_locale``)."""
    return str(get_locale()) if has_request_context() else None


@dataclass(frozen=True)
class Channels:
    """The senders chosen by configuration, built once per app.

    ``messages(session)`` gives the ``Messages`` service on a session (a
    request's, a command's); views and commands ask ``find_service(Messages)``.
    """

    settings: Settings
    email_sender: EmailSender
    sms_sender: SmsSender
    letter_sender: LetterSender = field(default_factory=OutboxLetterSender)
    logout_sender: LogoutSender | None = None
    render: Render = _flask_render
    current_locale: CurrentLocale = _request_locale
    clock: Clock = utcnow
    # The frames of the messages that have them (``Messages.queue``'s ``framed``), for the app.
    frames: Frames = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings,
                      sign_logout: Callable[[str, str], str] | None = None) -> Channels:
        """``sign_logout(tenant, claims)``: signs a back-channel logout token (the keystore's)."""
        email_sender, sms_sender = build_senders(settings)
        logout_sender = (HttpLogoutSender(sign_logout, timeout=settings.backchannel_logout_timeout_seconds)
                         if sign_logout is not None else None)
        return cls(settings=settings, email_sender=email_sender, sms_sender=sms_sender,
                   letter_sender=build_letter_sender(settings), logout_sender=logout_sender)

    def install_dispatch(self, factory: sessionmaker, work: dispatch.Work | None = None) -> None:
        """Messages queued on sessions of ``factory`` are handed to the worker when their
        transaction commits, and also tried at once in the "inline" delivery mode, where
        ``work`` also carries out at once what they recorded for the worker."""
        inline = self.settings.message_delivery == "inline"
        dispatch.install(factory, self._attempt_each if inline else None, work)

    def _attempt_each(self, session: Session, outgoing: list[Message]) -> dict[int, bool]:
        messages = self.messages(session)
        # Logout tokens are always the worker's: a relying party that does not answer must not
        # hold the page of the member who signed out.
        return {message.id: messages.send_now(message) for message in outgoing
                if message.channel != "logout"}

    def messages(self, session: Session) -> Messages:
        return Messages(
            session,
            email_sender=self.email_sender,
            sms_sender=self.sms_sender,
            letter_sender=self.letter_sender,
            settings=self.settings,
            render=self.render,
            current_locale=self.current_locale,
            clock=self.clock,
            logout_sender=self.logout_sender,
            frames=self._frames(),
        )

    def _frames(self) -> Frames | None:
        """Messages are framed with the app's templates, unless they are reloaded
        (``TEMPLATES_AUTO_RELOAD``): then rendered whole, as the pages are."""
        if self.render is _flask_render and has_app_context() and not current_app.jinja_env.auto_reload:
            return self.frames
        return None

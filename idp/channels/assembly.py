"""The channels as the app assembles them: the senders its configuration names, and messages
rendered with the app's Jinja environment in the reader's language.

Flask only here: ``idp.channels.services`` takes its renderer and the request's language
as plain callables, so that it runs the same under a command, a worker or a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, has_request_context
from flask_babel import force_locale, get_locale
from jinja2 import Template
from sqlalchemy.orm import Session, sessionmaker

from idp.channels import dispatch
from idp.channels.models import Message
from idp.channels.senders import EmailSender, SmsSender, build_senders
from idp.channels.services import Clock, CurrentLocale, Messages, Render
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
    render: Render = _flask_render
    current_locale: CurrentLocale = _request_locale
    clock: Clock = utcnow

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        email_sender, sms_sender = build_senders(settings)
        return cls(settings=settings, email_sender=email_sender, sms_sender=sms_sender)

    def install_dispatch(self, factory: sessionmaker, work: dispatch.Work | None = None) -> None:
        """Messages queued on sessions of ``factory`` are handed to the worker when their
        transaction commits, and also tried at once in the "inline" delivery mode, where
        ``work`` also carries out at once what they recorded for the worker."""
        inline = self.settings.message_delivery == "inline"
        dispatch.install(factory, self._attempt_each if inline else None, work)

    def _attempt_each(self, session: Session, outgoing: list[Message]) -> dict[int, bool]:
        messages = self.messages(session)
        return {message.id: messages.send_now(message) for message in outgoing}

    def messages(self, session: Session) -> Messages:
        return Messages(
            session,
            email_sender=self.email_sender,
            sms_sender=self.sms_sender,
            settings=self.settings,
            render=self.render,
            current_locale=self.current_locale,
            clock=self.clock,
        )

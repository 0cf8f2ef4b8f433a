"""Drive the provider as a relying party and a member's browser would, over HTTP."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event, select, update

from idp.channels.models import Message
from tests.factories import PASSWORD


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


# A CSRF token (Flask-WTF's, signed by itsdangerous): payload, timestamp and signature.
CSRF_TOKEN = re.compile(rb"[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}")


# The seconds a page has left before its session's time limit (deadline.js), as of the answer.
SECONDS_LEFT = re.compile(rb'data-deadline="\d+"')


def without_csrf_tokens(response) -> bytes:
    """A page with its CSRF tokens and its seconds left blanked: both are counted from the second
    the page is answered in, so two pages compared for saying the same thing, answered one after
    the other, are compared without them."""
    return SECONDS_LEFT.sub(b'data-deadline="(seconds)"', CSRF_TOKEN.sub(b"(token)", response.data))


class Flow:
    """A relying party plus the member's browser, both speaking to the test client."""

    def __init__(self, http, tenant: str, rp, account):
        self.http = http
        self.tenant = tenant
        self.rp = rp
        self.account = account
        self.verifier, self.challenge = pkce_pair()

    @property
    def identifier(self) -> str:
        return self.account.email if self.tenant == "malakoff" else self.account.member_number

    def params(self, **overrides) -> dict:
        params = {
            "response_type": "code",
            "client_id": self.rp.client_id,
            "redirect_uri": self.rp.redirect_uris[0],
            "scope": "openid profile email member",
            "state": "st-" + secrets.token_hex(4),
            "nonce": "n-" + secrets.token_hex(4),
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, method: str = "GET", **overrides):
        url = f"/{self.tenant}/authorize"
        params = self.params(**overrides)
        if method == "POST":
            return self.http.post(url, data=params)
        return self.http.get(url, query_string=params)

    def sign_in_page(self, response):
        """The sign-in page an authorization request answered with (shown in place, or at its
        own address, a pushed request's), and the interaction its form names."""
        if response.status_code in (302, 303):
            assert f"/{self.tenant}/login" in response.headers["Location"], response.headers["Location"]
            response = self.http.get(response.headers["Location"])
        assert response.status_code == 200, response.data[:500]
        assert b'name="password"' in response.data
        return response, interaction_of(response.data)

    def login(self, response, identifier: str | None = None, password: str = PASSWORD,
              channel: str | None = None, remember: bool = False):
        """From the sign-in page (or a redirect to it): password, then the code (unless this
        browser is trusted). Returns the last answer of the sign-in pages: the redirect to the
        client with the code, or to the page the request needs next (terms, consent, the new
        identifier)."""
        page, interaction = self.sign_in_page(response)
        posted = self.http.post(
            f"/{self.tenant}/login",
            data={
                "interaction": interaction,
                "identifier": identifier or self.identifier,
                "password": password,
                "csrf_token": csrf_token(page.data),
            },
        )
        if posted.status_code != 303:
            return posted
        if posted.headers["Location"].endswith(f"/{self.tenant}/login/code"):
            posted = self.second_factor(channel=channel, remember=remember)
            if posted.status_code != 303:
                return posted
        return posted

    def second_factor(self, channel: str | None = None, remember: bool = False):
        """Choose a channel (email when the account has one), read the code from the outbox,
        enter it."""
        channel = channel or ("email" if self.account.email else "sms")
        choose = self.http.get(f"/{self.tenant}/login/code")
        assert choose.status_code == 200, choose.data[:300]
        sent = self.http.post(f"/{self.tenant}/login/code",
                              data={"channel": channel, "csrf_token": csrf_token(choose.data)})
        assert sent.status_code == 303, sent.data[:500]
        verify = self.http.get(sent.headers["Location"])
        data = {"code": self.last_code(channel), "csrf_token": csrf_token(verify.data)}
        if remember:
            data["remember"] = "y"
        return self.http.post(f"/{self.tenant}/login/code/verify", data=data)

    def last_code(self, channel: str = "email") -> str:
        return last_code(self.http.application, channel)

    def give_password(self, password: str = PASSWORD, **overrides):
        """Authorize (a fresh sign-in unless ``prompt`` says otherwise) and give the password;
        returns the answer to the password form (a redirect to the code page when it was right)."""
        page, interaction = self.sign_in_page(self.authorize(**{"prompt": "login", **overrides}))
        return self.http.post(f"/{self.tenant}/login", data={
            "interaction": interaction, "identifier": self.identifier, "password": password,
            "csrf_token": csrf_token(page.data)})

    def sign_in(self, **overrides):
        """Authorize and sign in; returns the response that carries the code to the client."""
        return self.login(self.authorize(**overrides))

    def code(self, **overrides) -> str:
        response = self.sign_in(**overrides)
        assert response.status_code in (302, 303), response.data[:800]
        params = query(response.headers["Location"])
        assert "code" in params, params
        return params["code"]

    def token(self, code: str, *, verifier: str | None = "default", **extra):
        data = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.rp.redirect_uris[0]}
        if verifier == "default":
            verifier = self.verifier
        if verifier:
            data["code_verifier"] = verifier
        data.update(extra)
        return self.http.post(f"/{self.tenant}/token", data=data, **self.client_auth())

    def refresh(self, refresh_token: str, **extra):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        return self.http.post(f"/{self.tenant}/token", data=data, **self.client_auth())

    def client_auth(self) -> dict:
        if self.rp.auth_method == "client_secret_basic":
            return {"auth": (self.rp.client_id, self.rp.secret)}
        return {}

    def tokens(self, **overrides) -> dict:
        response = self.token(self.code(**overrides))
        assert response.status_code == 200, response.json
        return response.json

    def id_token_claims(self, id_token: str) -> dict:
        keys = KeySet.import_key_set(self.http.get(f"/{self.tenant}/jwks").json)
        return jwt.decode(id_token, keys).claims


def sign_in_over(response) -> None:
    """The answer of a page of a sign-in that is over (finished, gone), in a browser signed in
    to the tenant: it says so, and resumes nothing (no redirect, no code)."""
    assert response.status_code == 200, response.data[:300]
    assert "Location" not in response.headers
    assert "<h1>Connexion déjà effectuée</h1>".encode() in response.data


def newest_message(app, template: str, channel: str = "email") -> Message:
    """The newest message of that template and channel in the outbox."""
    session = app.extensions["idp"].database.session()
    try:
        message = session.scalar(
            select(Message).where(Message.channel == channel, Message.template == template)
            .order_by(Message.id.desc()).limit(1))
    finally:
        session.close()
    assert message is not None, f"no {channel} message {template!r} in the outbox"
    return message


def last_code(app, channel: str = "email", template: str = "otp_code") -> str:
    """The one-time code in the newest message of that channel and template in the outbox."""
    return re.search(r"\b(\d{6})\b", newest_message(app, template, channel).body_text).group(1)


def sms_code_step(client, tenant: str, response):
    """Registration's last step as a member takes it: the code of the SMS typed, when the step
    before (``response``) sent one; otherwise ``response`` itself."""
    if response.status_code != 303 or not response.headers["Location"].endswith("/register/code"):
        return response
    page = client.get(f"/{tenant}/register/code")
    code = last_code(client.application, "sms", "registration_code")
    return client.post(f"/{tenant}/register/code",
                       data={"code": code, "csrf_token": csrf_token(page.data)})


def code_asked_again_while_held_back(db, monkeypatch, template: str, ask, ask_again) -> list[str]:
    """``ask`` sends a code of ``template``; an outage holds its message back (pending again);
    ``ask_again``, past the resend cooldown, sends a new one. The statuses of the messages of
    ``template``, oldest first."""
    assert ask().status_code == 303
    db.execute(update(Message).where(Message.template == template).values(status="pending"))
    db.commit()
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    assert ask_again().status_code == 303
    db.expire_all()
    return list(db.scalars(select(Message.status).where(Message.template == template)
                           .order_by(Message.id)))


def interaction_of(html: bytes) -> str:
    """The interaction a page's form names."""
    found = re.search(rb'name="interaction"[^>]* value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1).decode()


def csrf_token(html: bytes) -> str:
    marker = b'name="csrf_token" type="hidden" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index(b'"', start)].decode()


@contextlib.contextmanager
def statements_run(app) -> Iterator[list[tuple[str, bool]]]:
    """Each statement the app runs meanwhile, through SQLAlchemy or prepared on the driver
    (idp.db, which tells SQLAlchemy's listeners too), its whitespace made single spaces, and
    whether its connection was outside a transaction (the driver's autocommit)."""
    seen: list[tuple[str, bool]] = []
    engine = app.extensions["idp"].database.engine

    def note(_conn, cursor, statement, _params, _context, _many):
        seen.append((" ".join(statement.split()), bool(getattr(cursor.connection, "autocommit", False))))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)

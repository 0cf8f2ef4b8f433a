"""Factories for accounts and clients, written through the same services as the product."""

from __future__ import annotations

import re
import secrets
import shutil
from datetime import date, datetime, timedelta
from itertools import count
from pathlib import Path

from idp.accounts.services import create_account
from idp.oidc.models import Client, token_digest
from idp.tenancy import MIGRATION_TIMEZONE

PASSWORD = "Correct-Horse-7!"
_numbers = count(10000001)
TENANTS = Path(__file__).resolve().parent.parent / "config" / "tenants"


class Factories:
    def __init__(self, app, db):
        self.app = app
        self.db = db
        self.services = app.extensions["idp"]

    def account(self, tenant: str = "malakoff", **fields):
        number = str(next(_numbers))
        values = {
            "given_name": "Jeanne",
            "family_name": "Martin",
            "password": PASSWORD,
            "birthdate": date(1958, 3, 14),
            "member_number": number,
            "phone_number": "+33612345688",
        }
        if tenant == "malakoff":
            values["email"] = f"jeanne.{number}@example.org"
        values.update(fields)
        preferences = values.pop("preferences", {"statements": "email", "letters": "email",
                                                 "marketing": False})
        locale = values.pop("locale", None)
        account = create_account(self.db, self.services.hasher, self.services.tenants[tenant], **values)
        account.locale = locale  # as if the member had registered or signed in in that language
        if self.services.tenants[tenant].communication_preferences:
            account.preferences = preferences  # an established member who already chose
        self.db.commit()
        return account

    def client(
        self,
        tenant: str = "malakoff",
        *,
        auth_method: str = "client_secret_basic",
        redirect_uris=("https://rp.example.org/callback",),
        post_logout_redirect_uris=("https://rp.example.org/",),
        scopes=("openid", "profile", "email", "phone", "member", "offline_access"),
        first_party: bool = True,
        jwks=None,
        client_id: str | None = None,
    ):
        secret = None if auth_method in ("none", "private_key_jwt") else secrets.token_urlsafe(32)
        client = Client(
            tenant=tenant,
            client_id=client_id or f"{tenant}-{secrets.token_hex(4)}",
            name="Portail de test",
            secret_digest=token_digest(secret) if secret else None,
            auth_method=auth_method,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            scopes=list(scopes),
            first_party=first_party,
            jwks=jwks,
        )
        self.db.add(client)
        self.db.commit()
        client.secret = secret
        return client


# (starts_on, cutoff_on) in days from today, per phase.
PHASES = {"before": (10, 40), "open": (-10, 30), "closed": (-40, -1)}


def tenants_in_phase(directory, phase: str) -> str:
    """A copy of the tenants' configuration with Malakoff's migration in ``phase`` today."""
    shutil.copytree(TENANTS, directory)
    malakoff = directory / "malakoff.toml"
    today = datetime.now(MIGRATION_TIMEZONE).date()
    starts, cutoff = (today + timedelta(days=days) for days in PHASES[phase])
    text = re.sub(r"\n\[migration\].*", "", malakoff.read_text(encoding="utf-8"), flags=re.S)
    malakoff.write_text(f"{text}\n[migration]\nstarts_on = {starts}\ncutoff_on = {cutoff}\n",
                        encoding="utf-8")
    return str(directory)

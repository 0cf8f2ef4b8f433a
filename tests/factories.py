"""Factories for accounts and clients, written through the same services as the product."""

from __future__ import annotations

import secrets
from datetime import date
from itertools import count

from idp.accounts.services import create_account
from idp.oidc.models import Client, token_digest

PASSWORD = "Correct-Horse-7!"
_numbers = count(10000001)


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
        account = create_account(self.db, self.services.hasher, self.services.tenants[tenant], **values)
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

"""Member identity provider: an OpenID Connect provider with one issuer per brand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from idp import metrics
from idp.accounts.hashing import PasswordHasher
from idp.channels.services import Channels
from idp.config import load_settings
from idp.db import Database
from idp.extensions import Services, close_db
from idp.keystore import KeyStore
from idp.sessions import StoreSessionInterface
from idp.store import create_store
from idp.tenancy import load_tenants

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the provider. ``overrides`` take precedence over files and environment."""
    settings = load_settings(overrides)
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(Path(__file__).parent / "static"),
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own timeouts
        WTF_CSRF_SSL_STRICT=False,  # Referer checks break with Referrer-Policy: no-referrer
        BABEL_DEFAULT_LOCALE="fr",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    store = create_store(settings.redis_url)
    database = Database(settings.database_url)
    metrics.count_committed_events(database.sessionmaker)
    services = Services(
        settings=settings,
        database=database,
        store=store,
        keystore=KeyStore(
            settings.keys_dir,
            prepublish_seconds=settings.key_prepublish_seconds,
            # A retired key stays published while anything it signed may still be verified.
            retain_seconds=max(settings.id_token_ttl, settings.access_token_ttl) + 300,
        ),
        tenants=load_tenants(Path(settings.tenants_dir), settings.base_url,
                             production=settings.is_production),
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        ),
        channels=Channels.from_settings(settings),
    )
    app.extensions["idp"] = services
    app.session_interface = StoreSessionInterface(
        store,
        idle=settings.session_idle_timeout,
        absolute=settings.session_absolute_timeout,
        secure=settings.cookie_secure,
        # Token, userinfo, introspection, revocation, JWKS, discovery (idp.oidc.views.api).
        stateless_blueprints=frozenset({"oidc_api"}),
    )
    app.teardown_appcontext(close_db)

    from idp import web  # noqa: PLC0415 - views import the app's collaborators

    web.init_app(app)
    return app

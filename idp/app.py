"""The provider as a WSGI application: settings, collaborators, service factories, blueprints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argon2.exceptions import HashingError
from werkzeug.middleware.proxy_fix import ProxyFix

from idp import metrics, web
from idp.accounts.contact_views import bp as contact_bp
from idp.accounts.hashing import PasswordHasher
from idp.accounts.recovery_views import bp as recovery_bp
from idp.accounts.registration_views import bp as registration_bp
from idp.accounts.views import bp as accounts_bp
from idp.channels.assembly import Channels
from idp.config import ConfigError, load_settings
from idp.db import Database, Timeouts
from idp.extensions import Services, close_db
from idp.favicon import add_favicon
from idp.keystore import KeyStore
from idp.oidc.server import build_server
from idp.oidc.sessions import sign_logout_token
from idp.oidc.views import api as oidc_api
from idp.oidc.views import bp as oidc_bp
from idp.oidc.views import lane_routes
from idp.ops import bp as ops_bp
from idp.pages import bp as pages_bp
from idp.passkeys.views import bp as passkeys_bp
from idp.sessions import StoreSessionInterface
from idp.signin.views import bp as signin_bp
from idp.store import create_store
from idp.tenancy import tenants_of
from idp.web.lane import Lane
from idp.web.rendering import Templates
from idp.web.transactions import Provider, refuse_late_commits
from idp.wiring import register_services, worker_tasks

ROOT = Path(__file__).resolve().parent.parent


def build_app(overrides: dict[str, Any] | None = None) -> Provider:
    """Build the provider. ``overrides`` take precedence over files and environment."""
    settings = load_settings(overrides)
    app = Provider(
        "idp",  # the package: its logger and root path
        template_folder=str(ROOT / "templates"),
        static_folder=str(Path(__file__).parent / "static"),
        static_url_path="/static",
    )
    app.jinja_environment = Templates
    app.config.update(
        SECRET_KEY=settings.secret_key,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own timeouts
        WTF_CSRF_SSL_STRICT=False,  # Referer checks break with Referrer-Policy: no-referrer
        BABEL_DEFAULT_LOCALE="fr",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    keystore = KeyStore(
        settings.keys_dir,
        prepublish_seconds=settings.key_prepublish_seconds,
        # A retired key stays published while anything it signed may still be verified.
        retain_seconds=max(settings.id_token_ttl, settings.access_token_ttl) + 300,
    )
    tenants = tenants_of(settings)

    def sign_logout(tenant: str, claims: str) -> str:
        return sign_logout_token(keystore, tenants[tenant].issuer, claims, settings.logout_token_ttl)

    store = create_store(settings.redis_url)
    database = Database(settings.database_url, Timeouts.from_settings(settings))
    metrics.count_committed_events(database.sessionmaker)
    app.request_deadline = settings.request_deadline_seconds
    refuse_late_commits(database.sessionmaker)
    try:
        # Hashes once: a cost libargon2 cannot compute here stops the start, not a sign-in.
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
    except HashingError as exc:
        raise ConfigError(f"IDP_ARGON2_MEMORY_COST, IDP_ARGON2_TIME_COST, IDP_ARGON2_PARALLELISM: "
                          f"libargon2 cannot hash at this cost on this machine ({exc})") from None
    services = Services(
        settings=settings,
        database=database,
        store=store,
        keystore=keystore,
        tenants=tenants,
        hasher=hasher,
        channels=Channels.from_settings(settings, sign_logout),
    )
    register_services(services.registry)
    services.channels.install_dispatch(database.sessionmaker,
                                       lambda session: worker_tasks(services, session))
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

    app.extensions["idp_oidc"] = build_server(app)
    web.init_app(app, trusted_proxies=settings.trusted_proxies)
    for blueprint in (oidc_api, oidc_bp, signin_bp, accounts_bp, contact_bp, registration_bp,
                      recovery_bp, passkeys_bp, pages_bp, ops_bp):
        app.register_blueprint(blueprint)
    web.csrf.exempt(oidc_api)
    add_favicon(app)
    # The protocol API's busiest requests, answered without the application's per-request work
    # (idp.web.lane).
    lane = Lane(app.wsgi_app, lane_routes(app), trusted_proxies=settings.trusted_proxies)
    app.wsgi_app = lane  # type: ignore[method-assign]
    app.from_memory = lane.from_memory
    if settings.trusted_proxies:
        # Outside the lane, which sees the client's Host and scheme as the views do.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    return app

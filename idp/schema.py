"""Schema migrations, run by Alembic from the scripts in idp/migrations/."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def load_models() -> None:
    """Import every model module, so that Base.metadata describes the whole schema."""
    from idp import events  # noqa: F401, PLC0415
    from idp.accounts import models as _accounts  # noqa: F401, PLC0415
    from idp.channels import models as _channels  # noqa: F401, PLC0415
    from idp.mfa import models as _mfa  # noqa: F401, PLC0415
    from idp.oidc import models as _oidc  # noqa: F401, PLC0415
    from idp.passkeys import models as _passkeys  # noqa: F401, PLC0415
    from idp.registry import models as _registry  # noqa: F401, PLC0415


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def _run(engine: Engine, action, *args) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, *args)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def autogenerate(engine: Engine, message: str) -> None:
    """Write a new migration script from the difference between models and database."""
    _run(engine, command.revision, message, True)

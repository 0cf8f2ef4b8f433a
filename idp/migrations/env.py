"""Alembic environment: the URL comes from the provider's settings (IDP_DATABASE_URL)."""

from alembic import context

from idp import events  # noqa: F401 - models register on Base
from idp.accounts import models as _accounts  # noqa: F401
from idp.channels import models as _channels  # noqa: F401
from idp.db import Base
from idp.mfa import models as _mfa  # noqa: F401
from idp.oidc import models as _oidc  # noqa: F401
from idp.registry import models as _registry  # noqa: F401

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `idp db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()

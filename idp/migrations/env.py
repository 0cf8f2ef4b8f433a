"""Alembic environment: the URL comes from the provider's settings (IDP_DATABASE_URL)."""

from alembic import context

from idp.db import Base
from idp.schema import load_models

load_models()

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

"""The Alembic migrations build exactly the schema the models describe, and go back down."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from idp import schema
from idp.db import Base


def test_migrations_match_the_models_and_downgrade_cleanly(tmp_path):
    schema.load_models()
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    schema.upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "run `idp db revision -m …` and commit the migration"
    schema.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

"""What tests do to a PostgreSQL server from outside the provider."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, text


def end_backend(url: str, pid: int) -> None:
    """End the server process ``pid`` serves a connection with, as a restart would, and wait
    until it is gone."""
    admin = create_engine(url)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):
                if not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                          {"pid": pid}).scalar():
                    return
                time.sleep(0.05)
    finally:
        admin.dispose()

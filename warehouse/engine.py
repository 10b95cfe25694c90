"""Engines for the warehouse URL: SQLite gets foreign keys, WAL and a busy timeout."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``postgresql://`` uses psycopg 3; SQLite is tuned for one
    writer and many readers)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        wal = parsed.database not in (None, "", ":memory:")
        event.listen(engine, "connect", lambda conn, _rec: _sqlite_pragmas(conn, wal))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, wal: bool) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    if wal:
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()

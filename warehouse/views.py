"""Views, kept in code and re-created at head by ``warehouse.migrate`` (repeatable).

Each view has one SQL text, or one per dialect where date arithmetic differs. Views only
read tables; dropping and re-creating them loses nothing.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

#: name -> SQL (str, same on both dialects) or {dialect name: SQL}. Order: dependencies first.
VIEWS: Final[dict[str, str | dict[str, str]]] = {
    "v_carbon_intensity_latest": """
        SELECT ci.*
        FROM ts_carbon_intensity ci
        WHERE NOT EXISTS (
            SELECT 1 FROM ts_carbon_intensity newer
            WHERE newer.provider = ci.provider AND newer.zone = ci.zone
              AND newer.signal = ci.signal AND newer.basis = ci.basis
              AND newer.interval_start = ci.interval_start
              AND newer.version > ci.version
        )
    """,
}


def view_sql(name: str, dialect: str) -> str:
    """The SELECT behind view ``name`` on ``dialect``."""
    sql = VIEWS[name]
    return sql if isinstance(sql, str) else sql[dialect]


def create_all(conn: Connection) -> None:
    """Create every view (the tables must be at head)."""
    for name in VIEWS:
        conn.execute(text(f"CREATE VIEW {name} AS {view_sql(name, conn.dialect.name)}"))


def drop_all(conn: Connection) -> None:
    """Drop every view this code knows (missing ones are fine), dependents first."""
    for name in reversed(list(VIEWS)):
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))

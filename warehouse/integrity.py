"""Shell: referential integrity of the facts, checked rather than enforced on PostgreSQL.

Since revision 0003 PostgreSQL does not re-check the sink's references row by row (see
``warehouse.models.PG_UNENFORCED_FOREIGN_KEYS``); this reads ``v_orphan_references``.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def orphans(conn: Connection) -> dict[str, int]:
    """``{"table.column": rows whose reference has no target}``, only the non-zero ones."""
    rows = conn.execute(text("SELECT reference, orphans FROM v_orphan_references"))
    return {reference: int(n) for reference, n in rows if n}

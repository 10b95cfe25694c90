"""Schema shell: a large backfill with the secondary indexes of ``fact_job`` built after it.

Maintaining the six secondary indexes of ``fact_job`` (end time, reconciliation status and
the four credit-check indexes) costs the server about as much as the rest of a bulk load
together (``bench.warehouse_ceiling``: ~20 us of server CPU a fact with them, ~9 without,
~2 more to build them afterwards by sorting). ``deferred_indexes`` drops them for the
block and builds them again at its end, whatever happens in it.

What it costs: while the block runs, queries that need those indexes (the credit check,
``jobcarbon jobs``, the views) fall back to scanning ``fact_job``: correct, but slow on a
large table. Use it for a first load or a backfill into a warehouse nobody queries
meanwhile. If the process dies inside the block, the indexes are missing until
``ensure_indexes`` runs again: ``jobcarbon db upgrade`` and the next ``deferred_indexes``
both call it (``CREATE INDEX IF NOT EXISTS``). The primary key and the natural key stay:
the sink needs them for every batch. PostgreSQL only (elsewhere the block just runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy import Connection, Engine, Index

from warehouse.models import FactJob, table_of

#: The indexes a deferred load drops and builds afterwards (every index on fact_job but
#: its primary and natural keys, which are constraints).
SECONDARY_INDEXES: Final[tuple[Index, ...]] = tuple(
    sorted(table_of(FactJob).indexes, key=lambda ix: str(ix.name))
)


def ensure_indexes(conn: Connection) -> None:
    """Create any of ``SECONDARY_INDEXES`` that is missing (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return
    for index in SECONDARY_INDEXES:
        index.create(conn, checkfirst=True)


@contextmanager
def deferred_indexes(engine: Engine) -> Iterator[None]:
    """Run the block without ``fact_job``'s secondary indexes; build them at its end."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.begin() as conn:
        ensure_indexes(conn)  # a load that died earlier left some missing
        for index in SECONDARY_INDEXES:
            index.drop(conn)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            ensure_indexes(conn)

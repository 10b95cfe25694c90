"""Shell: add roll-up deltas to the roll-up tables (INSERT ... ON CONFLICT DO UPDATE x + d;
on PostgreSQL from a COPYed staging table, ``pgcopy.upsert_rollups``)."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, Table

from warehouse.models import (
    COUNT_MEASURES,
    MEASURES,
    RollupAccountDay,
    RollupAccountMonth,
    RollupUserDay,
    table_of,
)
from warehouse.sink.delta import RollupDelta
from warehouse.sink.dims import insert_for
from warehouse.sink.pgcopy import upsert_rollups

#: roll-up table -> (table, dimension column, period column)
ROLLUP_KEYS: Final[dict[str, tuple[Table, str, str]]] = {
    "rollup_user_day": (table_of(RollupUserDay), "user_id", "day"),
    "rollup_account_day": (table_of(RollupAccountDay), "account_id", "day"),
    "rollup_account_month": (table_of(RollupAccountMonth), "account_id", "month"),
}
_N_COUNTS: Final = len(COUNT_MEASURES)


def delta_rows(delta: RollupDelta, table_name: str) -> list[dict[str, Any]]:
    """The rows of one table's delta, sorted by key (concurrent writers lock in order)."""
    _table, dim, period = ROLLUP_KEYS[table_name]
    rows = []
    for (dim_id, when), values in sorted(delta[table_name].items()):
        row: dict[str, Any] = {dim: dim_id, period: when}
        for i, name in enumerate(MEASURES):
            row[name] = round(values[i]) if i < _N_COUNTS else values[i]
        rows.append(row)
    return rows


def apply_rollups(conn: Connection, delta: RollupDelta) -> None:
    """Add ``delta`` to the roll-up tables inside the caller's transaction."""
    postgres = conn.dialect.name == "postgresql"
    for name, (table, dim, period) in ROLLUP_KEYS.items():
        rows = delta_rows(delta, name)
        if not rows:
            continue
        if postgres:
            upsert_rollups(conn, name, dim, period, [tuple(r.values()) for r in rows])
            continue
        stmt = insert_for(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[dim, period],
            set_={m: table.c[m] + stmt.excluded[m] for m in MEASURES},
        )
        conn.execute(stmt, rows)

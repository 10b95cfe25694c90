"""Shell: add roll-up deltas to the roll-up tables (INSERT ... ON CONFLICT DO UPDATE x + d;
on PostgreSQL from unnested arrays, ``pgcopy.upsert_rollups``)."""

from __future__ import annotations

from typing import Any, Final, cast

import numpy as np
from sqlalchemy import Connection, Table

from warehouse.apportion import day_date
from warehouse.models import (
    COUNT_MEASURES,
    MEASURES,
    RollupAccountDay,
    RollupAccountMonth,
    RollupUserDay,
    table_of,
)
from warehouse.sink.delta import RollupArrays, RollupDelta, RollupRows, as_arrays
from warehouse.sink.dims import insert_for
from warehouse.sink.pgcopy import upsert_rollups

#: roll-up table -> (table, dimension column, period column)
ROLLUP_KEYS: Final[dict[str, tuple[Table, str, str]]] = {
    "rollup_user_day": (table_of(RollupUserDay), "user_id", "day"),
    "rollup_account_day": (table_of(RollupAccountDay), "account_id", "day"),
    "rollup_account_month": (table_of(RollupAccountMonth), "account_id", "month"),
}
_N_COUNTS: Final = len(COUNT_MEASURES)


def delta_rows(rows: RollupRows, dim: str, period: str) -> list[dict[str, Any]]:
    """The rows of one table's delta as dicts (counts rounded to integers)."""
    counts = np.rint(rows.values[:, :_N_COUNTS]).astype(np.int64).tolist()
    sums = rows.values[:, _N_COUNTS:].tolist()
    out = []
    for dim_id, day, c, s in zip(rows.dim.tolist(), rows.day.tolist(), counts, sums, strict=True):
        row: dict[str, Any] = {dim: dim_id, period: day_date(day)}
        row.update(zip(MEASURES, (*c, *s), strict=True))
        out.append(row)
    return out


def apply_rollups(conn: Connection, delta: RollupArrays | RollupDelta) -> None:
    """Add ``delta`` to the roll-up tables inside the caller's transaction."""
    arrays = _as_arrays(delta)
    postgres = conn.dialect.name == "postgresql"
    for name, (table, dim, period) in ROLLUP_KEYS.items():
        rows = arrays.get(name)
        if rows is None or not len(rows):
            continue
        if postgres:
            upsert_rollups(conn, name, dim, period, rows)
            continue
        stmt = insert_for(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[dim, period],
            set_={m: table.c[m] + stmt.excluded[m] for m in MEASURES},
        )
        conn.execute(stmt, delta_rows(rows, dim, period))


def _as_arrays(delta: RollupArrays | RollupDelta) -> RollupArrays:
    if all(isinstance(v, RollupRows) for v in delta.values()):
        return cast(RollupArrays, delta)
    return as_arrays(cast(RollupDelta, delta))

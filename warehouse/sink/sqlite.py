"""Shell (SQLite only): land columns through the driver's executemany, not row dicts.

SQLAlchemy's executemany processes every parameter of every row in Python and compiles a
row-value ``IN`` per lookup (~60 % of the embedded default's time per fact). Here each column
goes through its type's bind processor once per column (``map``: the same conversion,
e.g. ``UTCDateTime``), the rows go to ``sqlite3``'s executemany as tuples, and lookups by
natural key bind ``(?, ?, ?)`` triples in chunks. Table and column names are the model's own
(never user text); every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Table

_CHUNK: Final = 300  # key triples per lookup (SQLite binds at most 32766 parameters)
#: Years 1000-9999 as UTC microseconds: the range where Arrow's strftime writes the same
#: text as SQLAlchemy's SQLite DATETIME (four-digit years).
_MICROS_RANGE: Final = (-30_610_224_000_000_000, 253_402_300_799_999_999)


def datetime_texts(column: pa.Array) -> list[str | None] | None:
    """A UTC timestamp column as SQLAlchemy stores it in SQLite (``UTCDateTime``:
    ``YYYY-MM-DD HH:MM:SS.ffffff``), formatted by Arrow; None outside years 1000-9999."""
    if column.null_count == len(column):
        return [None] * len(column)
    low, high = pc.min_max(column.cast(pa.int64())).values()
    if low.as_py() < _MICROS_RANGE[0] or high.as_py() > _MICROS_RANGE[1]:
        return None
    texts: list[str | None] = pc.strftime(column, format="%Y-%m-%d %H:%M:%S").to_pylist()
    return texts


def insert_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    bound: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """``INSERT INTO table (columns) VALUES (...)`` for every row of these columns
    (``bound``: columns already converted to what the driver takes)."""
    ready = bound or {}
    names = [*columns, *ready]
    converted: list[Sequence[Any]] = []
    for name in columns:
        values = columns[name]
        process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        converted.append(list(map(process, values)) if process is not None else values)
    converted.extend(ready.values())
    quote = conn.dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(table.c[n].name) for n in names)})"
    marks = ", ".join("?" * len(names))
    statement = f"INSERT INTO {target} VALUES ({marks})"  # noqa: S608 (model names, quoted)
    conn.exec_driver_sql(statement, list(zip(*converted, strict=True)))


def rows_by_key(
    conn: Connection, table: Table, keys: Sequence[tuple[int, int, int]], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """``columns`` of the rows of ``table`` under these (cluster_id, job_id, submit_epoch)."""
    names = list(dict.fromkeys(columns))
    quote = conn.dialect.identifier_preparer.quote
    selected = ", ".join(quote(table.c[n].name) for n in names)
    out: list[dict[str, Any]] = []
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        triples = ", ".join(["(?, ?, ?)"] * len(chunk))
        statement = (
            f"SELECT {selected} FROM {quote(table.name)}"  # noqa: S608 (model names, quoted)
            f" WHERE (cluster_id, job_id, submit_epoch) IN (VALUES {triples})"
        )
        params = tuple(part for key in chunk for part in key)
        rows = conn.exec_driver_sql(statement, params)
        out.extend(dict(zip(names, row, strict=True)) for row in rows)
    return out

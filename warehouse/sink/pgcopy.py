"""Shell (PostgreSQL only): move fact rows over binary ``COPY``, encoded from columns.

New ``fact_job`` rows are COPYed straight into the table under ids drawn from its sequence
beforehand; ``fact_job_co2e`` rows straight into theirs. The rows are encoded in bulk from
the batch's Arrow columns (``pgpq``, PostgreSQL's binary COPY format), each column cast to
the type the table declares (read from ``pg_attribute`` once per connection). Identifiers
are the model's own column names, composed by psycopg (never user text); every value
travels as COPY data.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import dict_row
from sqlalchemy import Connection

from warehouse.models import COUNT_MEASURES, MEASURES
from warehouse.sink.batch import TIMESTAMP, FactBatch
from warehouse.sink.delta import RollupRows
from warehouse.sink.dims import DimIds
from warehouse.sink.prepare import CO2E_FIELDS, FACT_COLUMNS

#: A batch's keys as stored: (cluster_id, job_id, submit_epoch) arrays.
DbKeys = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]

#: After a fact's own columns, in this order.
_TAIL_COLUMNS: Final = (
    "cluster_id", "user_id", "account_id", "partition_id", "qos_id", "content_hash",
    "updated_at", "inserted_at",
)  # fmt: skip
#: PostgreSQL type oid -> the Arrow type whose binary COPY encoding it reads.
_ARROW_OF_OID: Final = {
    20: pa.int64(),
    23: pa.int32(),
    21: pa.int16(),
    701: pa.float64(),
    16: pa.bool_(),
    25: pa.string(),
    1184: TIMESTAMP,
    1700: pa.decimal128(20, 0),
    1082: pa.date32(),
}
_BLOCK: Final = 1 << 20


def _driver(conn: Connection) -> Any:
    """The psycopg connection, with the binary array dumpers registered on it: a
    connection copies psycopg's global adapters when it opens, so one opened before this
    module was imported (a worker's engine migrating first) would not know them."""
    info = conn.connection.info
    driver: Any = conn.connection.driver_connection
    if not info.get("jobcarbon_array_dumpers"):
        for kind, dumper in _DUMPERS.items():
            driver.adapters.register_dumper(kind, dumper)
        info["jobcarbon_array_dumpers"] = True
    return driver


def _column_types(conn: Connection, cur: Any, table: str) -> dict[str, pa.DataType]:
    """``table``'s columns and the Arrow type of each (read once per connection)."""
    cache: dict[str, dict[str, pa.DataType]] = conn.connection.info.setdefault(
        "jobcarbon_arrow_types", {}
    )
    types = cache.get(table)
    if types is None:
        cur.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
        types = cache[table] = {name: _ARROW_OF_OID[oid] for name, oid in cur.fetchall()}
    return types


def _copy_arrow(conn: Connection, table: str, columns: dict[str, pa.Array]) -> None:
    """``COPY table (columns) FROM STDIN (FORMAT BINARY)`` of these columns, encoded in bulk."""
    with _driver(conn).cursor() as cur:
        types = _column_types(conn, cur, table)
        names = list(columns)
        arrays = [
            a if a.type == types[n] else a.cast(types[n]) for n, a in columns.items()
        ]  # a value that does not fit (e.g. INTEGER) fails here: the batch is isolated
        data = pa.RecordBatch.from_arrays(arrays, names=names)
        encoder = ArrowToPostgresBinaryEncoder(data.schema)
        payload = b"".join((encoder.write_header(), encoder.write_batch(data), encoder.finish()))
        with cur.copy(_copy_statement(table, tuple(names))) as copy:
            view = memoryview(payload)
            for i in range(0, len(view), _BLOCK):
                copy.write(view[i : i + _BLOCK])


@lru_cache(maxsize=16)
def _copy_statement(table: str, columns: tuple[str, ...]) -> bytes:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    return statement.as_bytes(None)


class PgArray:
    """A one-dimensional PostgreSQL array already in binary wire format (``binary_array``)."""

    __slots__ = ("data",)
    oid: int = 0

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Int8Array(PgArray):
    oid = 1016


class _Float8Array(PgArray):
    oid = 1022


class _DateArray(PgArray):
    oid = 1182


def _dumper(kind: type[PgArray]) -> type[Dumper]:
    class ArrayDumper(Dumper):
        format = Format.BINARY
        oid = kind.oid

        def dump(self, obj: Any) -> bytes:
            return obj.data

    return ArrayDumper


_DUMPERS: Final = {kind: _dumper(kind) for kind in (_Int8Array, _Float8Array, _DateArray)}

#: element type -> (array class, element oid, big-endian numpy type)
_ELEMENTS: Final = {
    "int8": (_Int8Array, 20, ">i8"),
    "float8": (_Float8Array, 701, ">f8"),
    "date": (_DateArray, 1082, ">i4"),
}
_PG_EPOCH_DAY: Final = 10_957  # 2000-01-01 as days since 1970-01-01


def binary_array(values: npt.NDArray[Any], element: str) -> PgArray:
    """``values`` as a PostgreSQL array in binary format, encoded with numpy (no Python
    object per element; psycopg dumps a list element by element, ~0.2-0.9 us each, and a
    text literal costs ~0.4 us a float). ``date`` takes day numbers since 1970-01-01."""
    kind, oid, be = _ELEMENTS[element]
    data = np.asarray(values)
    if element == "date":
        data = data - _PG_EPOCH_DAY
    n = len(data)
    if not n:
        return kind(struct.pack(">iii", 0, 0, oid))
    rows = np.empty(n, dtype=[("len", ">i4"), ("value", be)])
    rows["len"] = np.dtype(be).itemsize
    rows["value"] = data
    return kind(struct.pack(">iiiii", 1, 0, oid, n, 1) + rows.tobytes())


def db_keys(batch: FactBatch, ids: DimIds) -> DbKeys:
    """The stored keys of a batch's facts."""
    job = np.asarray(batch.arrays["job_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
    epoch = np.fromiter(batch.values["submit_epoch"], dtype=np.int64, count=len(batch))
    return ids.cluster_id, job, epoch


@lru_cache(maxsize=4)
def _stored_statement(columns: tuple[str, ...]) -> bytes:
    """The stored rows under a batch's keys, locked: one index probe per key (a lateral
    subquery that the planner cannot flatten; as a plain join it hashes a scan of the
    whole table, which grows with the warehouse: ~5 us a key at 200k facts)."""
    statement = sql.SQL(
        "SELECT {cols} FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[]) AS w(c, j, e)"
        " CROSS JOIN LATERAL (SELECT {inner} FROM fact_job f WHERE f.cluster_id = w.c"
        " AND f.job_id = w.j AND f.submit_epoch = w.e OFFSET 0 FOR UPDATE) AS s"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier("s", c) for c in columns),
        inner=sql.SQL(", ").join(sql.Identifier("f", c) for c in columns),
    )
    return statement.as_bytes(None)


def stored_rows(conn: Connection, keys: DbKeys, columns: Sequence[str]) -> list[dict[str, Any]]:
    """``columns`` of the stored facts under these keys, locked for update."""
    if not len(keys[0]):
        return []
    with _driver(conn).cursor(row_factory=dict_row) as cur:
        # The lateral probes cost the planner more than JIT's threshold: compiling would
        # cost more than the query.
        cur.execute("SET LOCAL jit = off")
        names = tuple(dict.fromkeys(columns))
        cur.execute(_stored_statement(names), [binary_array(k, "int8") for k in keys])
        return cur.fetchall()


def new_ids(conn: Connection, n: int) -> npt.NDArray[np.int64]:
    """``n`` ids drawn from ``fact_job``'s sequence (named once per connection: resolving it
    in the query costs a catalog lookup per id, ~3 us)."""
    info = conn.connection.info
    with _driver(conn).cursor() as cur:
        statement = info.get("jobcarbon_new_ids")
        if statement is None:
            cur.execute("SELECT pg_get_serial_sequence('fact_job', 'id')")
            (sequence,) = cur.fetchone()
            statement = info["jobcarbon_new_ids"] = sql.SQL(
                "SELECT nextval({}::regclass) FROM generate_series(1, %s)"
            ).format(sql.Literal(sequence))
        cur.execute(statement, (n,))
        return np.array([fact_id for (fact_id,) in cur.fetchall()], dtype=np.int64)


def copy_new_facts(
    conn: Connection,
    batch: FactBatch,
    ids: DimIds,
    now: datetime,
    fact_ids: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """COPY facts whose keys are not stored straight into ``fact_job``; their new ids, in
    order. The ids are drawn from the table's sequence first (or given), so no staging
    table and no ``INSERT ... SELECT`` is needed. A key stored meanwhile (a concurrent
    writer) fails the COPY on ``uq_fact_job_key``: the caller's transaction rolls back and
    it retries.
    """
    n = len(batch)
    if not n:
        return np.zeros(0, dtype=np.int64)
    if fact_ids is None:
        fact_ids = new_ids(conn, n)
    stamp = pa.array(np.full(n, int(now.timestamp() * 1e6), dtype=np.int64), type=TIMESTAMP)
    columns: dict[str, pa.Array] = {"id": pa.array(fact_ids)}
    columns.update((c, batch.arrays[c]) for c in FACT_COLUMNS)
    columns.update(
        cluster_id=pa.array(ids.cluster_id),
        user_id=pa.array(ids.user_id),
        account_id=pa.array(ids.account_id),
        partition_id=pa.array(ids.partition_id),
        qos_id=pa.array(ids.qos_id),
        content_hash=pa.array(batch.content_hash, type=pa.string()),
        updated_at=stamp,
        inserted_at=stamp,
    )
    _copy_arrow(conn, "fact_job", columns)
    return fact_ids


def copy_co2e(conn: Connection, batch: FactBatch, fact_ids: npt.NDArray[np.int64]) -> None:
    """COPY the CO2e estimates of a batch's facts, stored under ``fact_ids`` (per row)."""
    if not len(batch.co2e_row):
        return
    columns: dict[str, pa.Array] = {"fact_id": pa.array(fact_ids[batch.co2e_row])}
    columns.update((c, batch.co2e_arrays[c]) for c in CO2E_FIELDS)
    _copy_arrow(conn, "fact_job_co2e", columns)


@lru_cache(maxsize=16)
def _upsert_statement(table: str, dim: str, period: str) -> bytes:
    """``INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO UPDATE`` for one roll-up
    table, composed once (composing it costs milliseconds)."""
    columns = [dim, period, *MEASURES]
    kinds = [
        "bigint",
        "date",
        *(["bigint"] * len(COUNT_MEASURES)),
        *(["float8"] * (len(MEASURES) - len(COUNT_MEASURES))),
    ]
    target = sql.Identifier(table)
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    arrays = sql.SQL(", ").join(
        sql.SQL("%b::{}[]").format(sql.SQL(kind))
        for kind in kinds  # fixed type names
    )
    adds = sql.SQL(", ").join(
        sql.SQL("{m} = {t}.{m} + EXCLUDED.{m}").format(m=sql.Identifier(m), t=target)
        for m in MEASURES
    )
    statement = sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT * FROM unnest({arrays}) AS d({cols})"
        " ORDER BY 1, 2 ON CONFLICT ({keys}) DO UPDATE SET {adds}"
    ).format(
        t=target,
        cols=column_list,
        arrays=arrays,
        keys=sql.SQL(", ").join([sql.Identifier(dim), sql.Identifier(period)]),
        adds=adds,
    )
    return statement.as_bytes(None)


def upsert_rollups(conn: Connection, table: str, dim: str, period: str, rows: RollupRows) -> None:
    """Add ``rows`` (sorted by key) to roll-up ``table`` in one ``INSERT ... SELECT FROM
    unnest(binary arrays) ... ON CONFLICT DO UPDATE`` (an executemany cost ~100 us a row). Rows go
    in key order: concurrent writers lock roll-up rows in the same order."""
    n_counts = len(COUNT_MEASURES)
    params = [binary_array(rows.dim, "int8"), binary_array(rows.day, "date")]
    counts = np.rint(rows.values[:, :n_counts]).astype(np.int64)
    params.extend(binary_array(counts[:, i], "int8") for i in range(n_counts))
    params.extend(binary_array(rows.values[:, i], "float8") for i in range(n_counts, len(MEASURES)))
    with _driver(conn).cursor() as cur:
        cur.execute(_upsert_statement(table, dim, period), params)

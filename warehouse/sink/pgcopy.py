"""Shell (PostgreSQL only): move fact rows over ``COPY`` instead of row-by-row statements.

New ``fact_job`` rows are COPYed straight into the table under ids drawn from its sequence
beforehand; ``fact_job_co2e`` rows are COPYed straight into theirs. Identifiers are the model's own
column names, composed by psycopg (never user text); every value travels as COPY data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from psycopg import sql
from psycopg.rows import dict_row
from sqlalchemy import Connection

from warehouse.models import COUNT_MEASURES, MEASURES, SUM_MEASURES
from warehouse.sink.dims import DimIds
from warehouse.sink.prepare import NaturalKey, PreparedFact

#: A fact's key as stored: (cluster_id, job_id, submit_epoch).
DbKey = tuple[int, int, int]

CO2E_COLUMNS: Final = (
    "fact_id", "provider", "zone", "signal", "basis", "factor_g_per_kwh_it",
    "intensity_g_per_kwh", "coverage", "fallback", "estimated_share", "co2e_g",
)  # fmt: skip
#: After a fact's own columns, in this order (see ``fact_row``).
_TAIL_COLUMNS: Final = (
    "cluster_id", "user_id", "account_id", "partition_id", "qos_id", "content_hash",
    "updated_at", "inserted_at",
)  # fmt: skip


def fact_row(fact: PreparedFact, d: DimIds, now: datetime) -> tuple[Any, ...]:
    """The COPY row of a fact: its columns, then ``_TAIL_COLUMNS``."""
    return (*fact.columns.values(), d.cluster_id, d.user_id, d.account_id, d.partition_id,
            d.qos_id, fact.content_hash, now, now)  # fmt: skip


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _binary_copy(conn: Connection, cur: Any, table: str, columns: Sequence[str]) -> Any:
    """``COPY table (columns) FROM STDIN`` in binary format, and the columns' type oids.

    With the types set up front psycopg encodes each value with one C dumper per column:
    ~2.5 us for a 73-column fact row against ~17 us in text format, where it looks up a
    dumper per value. The oids are read once per connection (``pg_attribute``).
    """
    cache: dict[str, dict[str, int]] = conn.connection.info.setdefault("jobcarbon_oids", {})
    oids = cache.get(table)
    if oids is None:
        cur.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
        oids = cache[table] = dict(cur.fetchall())
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
    copy = cur.copy(statement.format(sql.Identifier(table), column_list))
    return copy, [oids[c] for c in columns]


def array_literal(values: Iterable[Any]) -> str:
    """``{v1,v2,...}``: ints, finite floats (shortest repr, read back exactly) or dates as
    one PostgreSQL array literal. psycopg dumps a list element by element (~4 us each);
    ``str.join`` does it in C."""
    return "{" + ",".join(map(str, values)) + "}"


def stored_keys(conn: Connection, keys: Sequence[DbKey]) -> set[DbKey]:
    """Which of these stored keys ``fact_job`` already holds (one join with unnested arrays)."""
    if not keys:
        return set()
    arrays = [array_literal(part) for part in zip(*keys, strict=True)]
    with _driver(conn).cursor() as cur:
        cur.execute(
            "SELECT f.cluster_id, f.job_id, f.submit_epoch FROM fact_job f"
            " JOIN unnest(%s::text::bigint[], %s::text::bigint[], %s::text::bigint[])"
            " AS w(c, j, e) ON f.cluster_id = w.c AND f.job_id = w.j AND f.submit_epoch = w.e",
            arrays,
        )
        return set(cur.fetchall())


def stored_rows(
    conn: Connection, keys: Sequence[DbKey], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """``columns`` of the stored facts under these keys, locked for update (one join with
    unnested arrays: a long row-value ``IN`` list takes PostgreSQL ~100 ms to plan)."""
    if not keys:
        return []
    arrays = [array_literal(part) for part in zip(*keys, strict=True)]
    statement = sql.SQL(
        "SELECT {cols} FROM fact_job f"
        " JOIN unnest(%s::text::bigint[], %s::text::bigint[], %s::text::bigint[])"
        " AS w(c, j, e) ON f.cluster_id = w.c AND f.job_id = w.j AND f.submit_epoch = w.e"
        " FOR UPDATE OF f"
    ).format(cols=sql.SQL(", ").join(sql.Identifier("f", c) for c in columns))
    with _driver(conn).cursor(row_factory=dict_row) as cur:
        cur.execute(statement, arrays)
        return cur.fetchall()


def copy_new_facts(
    conn: Connection, facts: Sequence[PreparedFact], ids: dict[NaturalKey, DimIds], now: datetime
) -> list[int]:
    """COPY facts whose keys are not stored straight into ``fact_job``; their new ids, in
    order. The ids are drawn from the table's sequence first, so no staging table and no
    ``INSERT ... SELECT`` is needed. A key stored meanwhile (a concurrent writer) fails the
    COPY on ``uq_fact_job_key``: the caller's transaction rolls back and it retries.
    """
    if not facts:
        return []
    columns = ["id", *facts[0].columns, *_TAIL_COLUMNS]
    with _driver(conn).cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('fact_job', 'id')) FROM generate_series(1, %s)",
            (len(facts),),
        )
        new_ids = [fact_id for (fact_id,) in cur.fetchall()]
        copying, types = _binary_copy(conn, cur, "fact_job", columns)
        with copying as copy:
            copy.set_types(types)
            write = copy.write_row
            for fact_id, f in zip(new_ids, facts, strict=True):
                write((fact_id, *fact_row(f, ids[f.key], now)))
    return new_ids


def copy_co2e(conn: Connection, facts: Sequence[tuple[int, PreparedFact]]) -> None:
    """COPY the CO2e estimates of facts stored under these ids."""
    if not any(f.co2e for _, f in facts):
        return
    with _driver(conn).cursor() as cur:
        copying, types = _binary_copy(conn, cur, "fact_job_co2e", CO2E_COLUMNS)
        with copying as copy:
            copy.set_types(types)
            write = copy.write_row
            for fact_id, fact in facts:
                for e in fact.co2e:
                    write((fact_id, *e.values()))


def upsert_rollups(
    conn: Connection, table: str, dim: str, period: str, rows: list[tuple[Any, ...]]
) -> None:
    """Add ``rows`` (``dim``, ``period``, then ``MEASURES``; sorted by key) to roll-up
    ``table`` in one ``INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO UPDATE``
    (an executemany cost ~100 us a row). Rows go in key order: concurrent writers lock
    roll-up rows in the same order."""
    columns = [dim, period, *MEASURES]
    kinds = [
        "bigint",
        "date",
        *(["bigint"] * len(COUNT_MEASURES)),
        *(["float8"] * len(SUM_MEASURES)),
    ]
    target = sql.Identifier(table)
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    arrays = sql.SQL(", ").join(
        sql.SQL("%s::text::{}[]").format(sql.SQL(kind))
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
    with _driver(conn).cursor() as cur:
        cur.execute(statement, [array_literal(column) for column in zip(*rows, strict=True)])

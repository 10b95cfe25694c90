"""Shell (PostgreSQL only): move fact rows over ``COPY`` instead of row-by-row statements.

``fact_job`` rows are COPYed into a temporary staging table and moved with one
``INSERT ... SELECT ... RETURNING`` (the new ids come back without a second query);
``fact_job_co2e`` rows are COPYed straight into their table. Identifiers are the model's own
column names, composed by psycopg (never user text); every value travels as COPY data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from psycopg import sql
from sqlalchemy import Connection

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


def insert_staged(
    conn: Connection,
    facts: Sequence[PreparedFact],
    ids: dict[NaturalKey, DimIds],
    now: datetime,
    *,
    skip_existing: bool,
) -> dict[DbKey, int]:
    """Insert ``facts`` into ``fact_job``; ``{stored key: new id}`` of the rows inserted.

    ``skip_existing`` leaves keys already stored alone (they are missing from the answer);
    without it such a key fails the statement (the caller decided they were new).
    """
    if not facts:
        return {}
    columns = [*facts[0].columns, *_TAIL_COLUMNS]
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    conflict = (
        sql.SQL(" ON CONFLICT ON CONSTRAINT uq_fact_job_key DO NOTHING")
        if skip_existing
        else sql.SQL("")
    )
    with _driver(conn).cursor() as cur:
        cur.execute("CREATE TEMP TABLE stage_fact (LIKE fact_job) ON COMMIT DROP")
        cur.execute("ALTER TABLE stage_fact DROP COLUMN id")
        with cur.copy(sql.SQL("COPY stage_fact ({}) FROM STDIN").format(column_list)) as copy:
            write = copy.write_row
            for f in facts:
                write(fact_row(f, ids[f.key], now))
        cur.execute(
            sql.SQL(
                "INSERT INTO fact_job ({cols}) SELECT {cols} FROM stage_fact{conflict}"
                " RETURNING cluster_id, job_id, submit_epoch, id"
            ).format(cols=column_list, conflict=conflict)
        )
        inserted = {(c, j, e): fact_id for c, j, e, fact_id in cur.fetchall()}
        cur.execute("DROP TABLE stage_fact")
    return inserted


def copy_co2e(conn: Connection, facts: Sequence[tuple[int, PreparedFact]]) -> None:
    """COPY the CO2e estimates of facts stored under these ids."""
    if not any(f.co2e for _, f in facts):
        return
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in CO2E_COLUMNS)
    with (
        _driver(conn).cursor() as cur,
        cur.copy(sql.SQL("COPY fact_job_co2e ({}) FROM STDIN").format(columns)) as copy,
    ):
        write = copy.write_row
        for fact_id, fact in facts:
            for e in fact.co2e:
                write((fact_id, *e.values()))

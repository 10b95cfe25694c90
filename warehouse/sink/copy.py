"""Shell: the bulk path for PostgreSQL backfills, over ``COPY``, with exact roll-ups.

Per chunk, in one transaction: new facts are COPYed into a temporary table and moved into
``fact_job`` with ``ON CONFLICT DO NOTHING``; the ones that were inserted add their whole
contribution to the roll-ups; facts whose key was already stored go through the ordinary
upsert (``writer.apply_batch``) so they move the roll-ups by the difference. If the
database refuses anything in a chunk, the chunk is redone through ``write_prepared``, which
isolates the bad facts. On SQLite ``copy_facts`` is ``write_facts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from schemas.fact import JobFact
from warehouse.sink.delta import (
    add_contribution,
    empty_delta,
    latest_per_key,
    nonzero,
    rollup_input,
)
from warehouse.sink.dims import DimCache, resolve
from warehouse.sink.prepare import PreparedFact, prepare_all
from warehouse.sink.result import Rejected, SinkResult
from warehouse.sink.rollups import apply_rollups
from warehouse.sink.writer import apply_batch, dim_cache, fact_values, write_facts, write_prepared

_CO2E_COLUMNS = (
    "fact_id", "provider", "zone", "signal", "basis", "factor_g_per_kwh_it",
    "intensity_g_per_kwh", "coverage", "fallback", "estimated_share", "co2e_g",
)  # fmt: skip


def copy_facts(
    engine: Engine,
    facts: Iterable[JobFact],
    *,
    default_cluster: str | None = None,
    chunk_size: int = 50_000,
    now: datetime | None = None,
) -> SinkResult:
    """Bulk-load ``facts`` (same outcome as ``write_facts``, much faster on PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        return write_facts(engine, facts, default_cluster=default_cluster, now=now)
    prepared, rejected, ignored = prepare_all(facts, default_cluster)
    result = SinkResult(ignored=ignored, rejected=[Rejected(j, r) for j, r in rejected])
    unique = latest_per_key(prepared)
    result.duplicates = len(prepared) - len(unique)
    stamp = now or datetime.now(UTC)
    for i in range(0, len(unique), chunk_size):
        result += _copy_chunk(engine, unique[i : i + chunk_size], stamp)
    return result


def _copy_chunk(engine: Engine, facts: Sequence[PreparedFact], now: datetime) -> SinkResult:
    cache = dim_cache(engine)
    try:
        with engine.begin() as conn:
            result, learnt = _copy_in(conn, facts, cache, now)
    except (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except (StatementError, psycopg.Error):
        # Something in the chunk was refused: redo it fact by fact where needed.
        return write_prepared(engine, facts, now)
    cache.update(learnt)
    return result


def _copy_in(
    conn: Connection, facts: Sequence[PreparedFact], cache: DimCache, now: datetime
) -> tuple[SinkResult, DimCache]:
    ids, learnt = resolve(conn, facts, cache)
    columns = [*fact_values(facts[0], ids[facts[0].key], now), "inserted_at"]
    # Identifiers are the model's own column names, composed by psycopg (never user text).
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    raw: Any = conn.connection.driver_connection
    inserted: dict[tuple[int, int, int], int] = {}
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE stage_fact (LIKE fact_job) ON COMMIT DROP")
        cur.execute("ALTER TABLE stage_fact DROP COLUMN id")
        copy_stage = sql.SQL("COPY stage_fact ({}) FROM STDIN").format(column_list)
        with cur.copy(copy_stage) as copy:
            write = copy.write_row
            for f in facts:  # the order of fact_values: columns, dimension ids, hash, times
                d = ids[f.key]
                write((*f.columns.values(), d.cluster_id, d.user_id, d.account_id,
                       d.partition_id, d.qos_id, f.content_hash, now, now))  # fmt: skip
        cur.execute(
            sql.SQL(
                "INSERT INTO fact_job ({cols}) SELECT {cols} FROM stage_fact"
                " ON CONFLICT ON CONSTRAINT uq_fact_job_key DO NOTHING"
                " RETURNING cluster_id, job_id, submit_epoch, id"
            ).format(cols=column_list)
        )
        for cluster_id, job_id, epoch, fact_id in cur.fetchall():
            inserted[(cluster_id, job_id, epoch)] = fact_id
        new: list[tuple[int, PreparedFact]] = []
        existing: list[PreparedFact] = []
        delta = empty_delta()
        for fact in facts:
            d = ids[fact.key]
            fact_id = inserted.get((d.cluster_id, fact.key[1], fact.key[2]))
            if fact_id is None:
                existing.append(fact)
                continue
            new.append((fact_id, fact))
            add_contribution(delta, rollup_input(fact.columns, d.user_id, d.account_id))
        copy_co2e = sql.SQL("COPY fact_job_co2e ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _CO2E_COLUMNS)
        )
        with cur.copy(copy_co2e) as copy:
            for fact_id, fact in new:
                for estimate in fact.co2e:
                    copy.write_row([fact_id, *(estimate[c] for c in _CO2E_COLUMNS[1:])])
    apply_rollups(conn, nonzero(delta))
    result = SinkResult(inserted=len(new))
    if existing:
        more, learnt_more = apply_batch(conn, existing, cache, now)
        result += more
        learnt.update(learnt_more)
    return result, learnt

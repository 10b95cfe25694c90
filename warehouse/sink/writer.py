"""Shell: land prepared facts in one transaction per batch (facts + roll-up deltas).

A batch the database refuses is split in halves until the refused fact is alone; it is
reported with the job named and the rest lands. Connection failures are raised (the caller
retries; nothing is reported as bad data because the database was away).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from schemas.fact import JobFact
from warehouse.models import FactJob, FactJobCo2e, table_of
from warehouse.sink.delta import ROLLUP_INPUT_COLUMNS, RollupInput, Stored, latest_per_key, plan
from warehouse.sink.dims import DimCache, DimIds, resolve
from warehouse.sink.pgcopy import copy_co2e, copy_new_facts, stored_rows
from warehouse.sink.prepare import NaturalKey, PreparedFact, precedence, prepare_all
from warehouse.sink.result import Rejected, SinkResult
from warehouse.sink.rollups import apply_rollups

FACT = table_of(FactJob)
CO2E = table_of(FactJobCo2e)
_CHUNK = 500
_BIGINTS = ARRAY(BigInteger)
_CACHES: weakref.WeakKeyDictionary[Engine, DimCache] = weakref.WeakKeyDictionary()


def dim_cache(engine: Engine) -> DimCache:
    """The committed dimension ids known for ``engine``."""
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = DimCache()
    return cache


def write_facts(
    engine: Engine,
    facts: Iterable[JobFact],
    *,
    default_cluster: str | None = None,
    batch_size: int = 500,
    now: datetime | None = None,
) -> SinkResult:
    """Upsert ``facts`` under their natural key, roll-ups moved by the difference.

    A replay or duplicate changes nothing; a correction updates the fact and its roll-ups
    in the same transaction; a bad fact is rejected (named in the result) without
    stopping the others. ``now`` stamps ``inserted_at``/``updated_at``.
    """
    prepared, rejected, ignored = prepare_all(facts, default_cluster)
    result = SinkResult(ignored=ignored, rejected=[Rejected(j, r) for j, r in rejected])
    unique = latest_per_key(prepared)
    result.duplicates = len(prepared) - len(unique)
    stamp = now or datetime.now(UTC)
    for i in range(0, len(unique), batch_size):
        result += write_prepared(engine, unique[i : i + batch_size], stamp)
    return result


def write_prepared(engine: Engine, facts: Sequence[PreparedFact], now: datetime) -> SinkResult:
    """Land one deduplicated batch, isolating facts the database refuses."""
    cache = dim_cache(engine)
    try:
        with engine.begin() as conn:
            result, learnt = apply_batch(conn, facts, cache, now)
    except (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except (StatementError, psycopg.Error) as exc:  # psycopg's own: from the COPY paths
        # Cached dimension ids may be stale (the schema was re-created under this engine):
        # forget them so the retries resolve again.
        _CACHES.pop(engine, None)
        if len(facts) == 1:
            reason = f"job {facts[0].label}: the database refused it: {_brief(exc)}"
            return SinkResult(rejected=[Rejected(facts[0].label, reason)])
        mid = len(facts) // 2
        result = write_prepared(engine, facts[:mid], now)
        result += write_prepared(engine, facts[mid:], now)
        return result
    cache.update(learnt)
    return result


def _brief(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def apply_batch(
    conn: Connection, facts: Sequence[PreparedFact], cache: DimCache, now: datetime
) -> tuple[SinkResult, DimCache]:
    """Inside the caller's transaction: land ``facts`` (one per key) and their deltas."""
    ids, learnt = resolve(conn, facts, cache)
    stored = fetch_stored(conn, facts, ids)
    decided = plan(facts, {k: (v.user_id, v.account_id) for k, v in ids.items()}, stored)
    inserted = insert_facts(conn, [f for f, _ in decided.inserts], ids, now)
    replaced = [(fact_id, f) for fact_id, f, _ in decided.updates]
    replace_facts(conn, replaced, ids, now)
    insert_co2e(conn, inserted + replaced)
    apply_rollups(conn, decided.rollups)
    result = SinkResult(
        inserted=len(decided.inserts),
        updated=len(decided.updates),
        unchanged=len(decided.unchanged),
        stale=len(decided.stale),
    )
    return result, learnt


_STORED_COLUMNS = (
    "id", "cluster_id", "job_id", "submit_epoch", "content_hash", "site", "event",
    *ROLLUP_INPUT_COLUMNS,
)  # fmt: skip


def fetch_stored(
    conn: Connection, facts: Sequence[PreparedFact], ids: dict[NaturalKey, DimIds]
) -> dict[NaturalKey, Stored]:
    """What is stored for these facts' keys (locked for update on PostgreSQL)."""
    by_db_key = {(ids[f.key].cluster_id, f.key[1], f.key[2]): f.key for f in facts}
    db_keys = list(by_db_key)
    rows: list[Any] = []
    if conn.dialect.name == "postgresql":
        rows = stored_rows(conn, db_keys, _STORED_COLUMNS)
    else:
        for i in range(0, len(db_keys), _CHUNK):
            rows.extend(conn.execute(_stored_query(db_keys[i : i + _CHUNK])).mappings())
    out: dict[NaturalKey, Stored] = {}
    for row in rows:
        key = by_db_key[(row["cluster_id"], row["job_id"], row["submit_epoch"])]
        out[key] = Stored(
            id=row["id"],
            content_hash=row["content_hash"],
            precedence=precedence(row["reconcile_status"], row["site"] is not None, row["event"]),
            rollup=RollupInput(*(row[c] for c in ROLLUP_INPUT_COLUMNS)),
        )
    return out


def _stored_query(keys: list[tuple[int, int, int]]) -> Select[Any]:
    columns = [FACT.c[c] for c in _STORED_COLUMNS]
    return select(*columns).where(
        tuple_(FACT.c.cluster_id, FACT.c.job_id, FACT.c.submit_epoch).in_(keys)
    )


def fact_values(fact: PreparedFact, dims: DimIds, now: datetime) -> dict[str, Any]:
    """The ``fact_job`` row of a prepared fact (without ``id`` and ``inserted_at``)."""
    return {
        **fact.columns,
        "cluster_id": dims.cluster_id,
        "user_id": dims.user_id,
        "account_id": dims.account_id,
        "partition_id": dims.partition_id,
        "qos_id": dims.qos_id,
        "content_hash": fact.content_hash,
        "updated_at": now,
    }


def insert_facts(
    conn: Connection, facts: Sequence[PreparedFact], ids: dict[NaturalKey, DimIds], now: datetime
) -> list[tuple[int, PreparedFact]]:
    """Insert new facts; their new ids. PostgreSQL: COPY under ids drawn beforehand
    (``pgcopy``). SQLite: one executemany, the ids read back by natural key (not
    ``INSERT ... RETURNING``: in parameter order it costs SQLite one statement per row).
    """
    if not facts:
        return []
    if conn.dialect.name == "postgresql":
        return list(zip(copy_new_facts(conn, facts, ids, now), facts, strict=True))
    rows = [{**fact_values(f, ids[f.key], now), "inserted_at": now} for f in facts]
    conn.execute(insert(FACT), rows)
    by_db_key = {(ids[f.key].cluster_id, f.key[1], f.key[2]): f for f in facts}
    db_keys = list(by_db_key)
    out: list[tuple[int, PreparedFact]] = []
    for i in range(0, len(db_keys), _CHUNK):
        query = select(FACT.c.id, FACT.c.cluster_id, FACT.c.job_id, FACT.c.submit_epoch).where(
            tuple_(FACT.c.cluster_id, FACT.c.job_id, FACT.c.submit_epoch).in_(
                db_keys[i : i + _CHUNK]
            )
        )
        out.extend((fact_id, by_db_key[(c, j, e)]) for fact_id, c, j, e in conn.execute(query))
    return out


def replace_facts(
    conn: Connection,
    facts: Sequence[tuple[int, PreparedFact]],
    ids: dict[NaturalKey, DimIds],
    now: datetime,
) -> None:
    """Overwrite stored facts (by id) and drop their old CO2e rows."""
    if not facts:
        return
    rows = [{**fact_values(f, ids[f.key], now), "fact_id_": fact_id} for fact_id, f in facts]
    columns = [c for c in rows[0] if c != "fact_id_"]
    stmt = (
        update(FACT)
        .where(FACT.c.id == bindparam("fact_id_"))
        .values({c: bindparam(c) for c in columns})
    )
    conn.execute(stmt, rows)
    fact_ids = [fact_id for fact_id, _ in facts]
    for i in range(0, len(fact_ids), _CHUNK):
        conn.execute(delete(CO2E).where(CO2E.c.fact_id.in_(fact_ids[i : i + _CHUNK])))


def insert_co2e(conn: Connection, facts: Sequence[tuple[int, PreparedFact]]) -> None:
    """Insert the CO2e estimates of facts whose rows are (now) stored under these ids."""
    if conn.dialect.name == "postgresql":
        copy_co2e(conn, facts)
        return
    rows = [{**row, "fact_id": fact_id} for fact_id, f in facts for row in f.co2e]
    if rows:
        conn.execute(insert(CO2E), rows)

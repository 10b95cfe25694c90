"""Shell: land validated batches in one transaction each (facts + roll-up deltas).

A batch the database refuses is split in halves until the refused fact is alone; it is
reported with the job named and the rest lands. Connection failures are raised (the caller
retries; nothing is reported as bad data because the database was away).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    update,
)
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from schemas.fact import JobFact
from warehouse.models import FactJob, FactJobCo2e, table_of
from warehouse.sink.batch import FactBatch, build_all, latest_per_key
from warehouse.sink.delta import (
    ROLLUP_INPUT_COLUMNS,
    RollupInput,
    RollupInputs,
    Stored,
    concat,
    contributions,
    inputs_of,
)
from warehouse.sink.dims import DimCache, DimIds, resolve
from warehouse.sink.nogc import paused_gc
from warehouse.sink.pgcopy import DbKeys, copy_co2e, copy_new_facts, db_keys, stored_rows
from warehouse.sink.prepare import (
    CO2E_FIELDS,
    FACT_COLUMNS,
    TIME_COLUMNS,
    UNRECONCILED,
    precedence,
)
from warehouse.sink.result import Rejected, SinkResult
from warehouse.sink.rollups import apply_rollups
from warehouse.sink.sqlite import datetime_texts, insert_columns, rows_by_key

FACT = table_of(FactJob)
CO2E = table_of(FactJobCo2e)
_CHUNK = 500
_CACHES: weakref.WeakKeyDictionary[Engine, DimCache] = weakref.WeakKeyDictionary()
_UNRECONCILED_ARRAY: Final = pa.array(sorted(UNRECONCILED))


def dim_cache(engine: Engine) -> DimCache:
    """The committed dimension ids known for ``engine``."""
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = DimCache()
    return cache


@dataclass(frozen=True, slots=True)
class PreparedFacts:
    """Facts validated, hashed and deduplicated (``prepare_facts``), ready for
    ``write_prepared``; ``settled`` counts what preparing decided (ignored, rejected,
    duplicates)."""

    batch: FactBatch
    settled: SinkResult


def prepare_facts(facts: Iterable[JobFact], *, default_cluster: str | None = None) -> PreparedFacts:
    """The client's CPU work of a write, without the database: columns, checks, content
    hashes, one fact per key. A stream worker runs it on its processing thread so the
    database thread only talks to the server."""
    with paused_gc():
        built = build_all(list(facts), default_cluster)
        unique = latest_per_key(built.batch)
    settled = SinkResult(
        ignored=built.ignored,
        rejected=[Rejected(j, r) for _, j, r in built.rejected],
        duplicates=len(built.batch) - len(unique),
    )
    return PreparedFacts(unique, settled)


def write_prepared(
    engine: Engine,
    prepared: PreparedFacts,
    *,
    batch_size: int = 2000,
    now: datetime | None = None,
) -> SinkResult:
    """Land prepared facts (``batch_size`` per transaction); the same outcome as
    ``write_facts`` on the facts they were prepared from. ``prepared`` is not changed, so
    a write that failed for a transient reason can be retried with it."""
    settled = prepared.settled
    result = SinkResult(
        ignored=settled.ignored, rejected=list(settled.rejected), duplicates=settled.duplicates
    )
    unique = prepared.batch
    stamp = now or datetime.now(UTC)
    with paused_gc():
        for i in range(0, len(unique), batch_size):
            rows = np.arange(i, min(i + batch_size, len(unique)), dtype=np.int64)
            result += write_batch(engine, unique.take(rows), stamp)
    return result


def write_facts(
    engine: Engine,
    facts: Iterable[JobFact],
    *,
    default_cluster: str | None = None,
    batch_size: int = 2000,
    now: datetime | None = None,
) -> SinkResult:
    """Upsert ``facts`` under their natural key, roll-ups moved by the difference
    (``batch_size`` facts per transaction: a stream worker's batch in one).

    A replay or duplicate changes nothing; a correction updates the fact and its roll-ups
    in the same transaction; a bad fact is rejected (named in the result) without
    stopping the others. ``now`` stamps ``inserted_at``/``updated_at``.
    """
    prepared = prepare_facts(facts, default_cluster=default_cluster)
    return write_prepared(engine, prepared, batch_size=batch_size, now=now)


def write_batch(engine: Engine, batch: FactBatch, now: datetime) -> SinkResult:
    """Land one deduplicated batch, isolating facts the database refuses."""
    cache = dim_cache(engine)
    try:
        with engine.begin() as conn:
            result, learnt = apply_batch(conn, batch, cache, now)
    except (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except (StatementError, psycopg.Error, pa.ArrowInvalid) as exc:  # COPY paths: psycopg's
        # own errors, or a value that does not fit its column's type
        # Cached dimension ids may be stale (the schema was re-created under this engine):
        # forget them so the retries resolve again.
        _CACHES.pop(engine, None)
        if len(batch) == 1:
            job = batch.label(0)
            reason = f"job {job}: the database refused it: {_brief(exc)}"
            return SinkResult(rejected=[Rejected(job, reason)])
        mid = len(batch) // 2
        result = write_batch(engine, batch.take(np.arange(mid)), now)
        result += write_batch(engine, batch.take(np.arange(mid, len(batch))), now)
        return result
    cache.update(learnt)
    return result


def _brief(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@dataclass(slots=True)
class Plan:
    """What one batch does: rows (of the batch) to insert, to update (with the stored id
    and roll-up input), unchanged and stale."""

    inserts: list[int] = field(default_factory=list)
    updates: list[tuple[int, Stored]] = field(default_factory=list)
    unchanged: int = 0
    stale: int = 0


def plan(batch: FactBatch, keys: DbKeys, stored: dict[tuple[int, int, int], Stored]) -> Plan:
    """Decide every fact of a deduplicated batch against what is stored: equal to the
    stored one (same hash) is unchanged; of lower precedence is stale (kept out); anything
    else replaces the stored row."""
    out = Plan()
    if not stored:
        out.inserts = list(range(len(batch)))
        return out
    hashes, ranks = batch.content_hash, batch.precedence.tolist()
    for i, key in enumerate(zip(*(k.tolist() for k in keys), strict=True)):
        old = stored.get(key)
        if old is None:
            out.inserts.append(i)
        elif old.content_hash == hashes[i]:
            out.unchanged += 1
        elif ranks[i] < old.precedence:
            out.stale += 1
        else:
            out.updates.append((i, old))
    return out


def apply_batch(
    conn: Connection, batch: FactBatch, cache: DimCache, now: datetime
) -> tuple[SinkResult, DimCache]:
    """Inside the caller's transaction: land ``batch`` (one fact per key) and its deltas."""
    ids, learnt = resolve(conn, batch, cache)
    keys = db_keys(batch, ids)
    decided = plan(batch, keys, fetch_stored(conn, keys))
    parts: list[RollupInputs] = []
    if decided.inserts:
        rows = np.array(decided.inserts, dtype=np.int64)
        new, new_ids = batch.take(rows), ids.take(rows)
        insert_facts(conn, new, new_ids, now)
        parts.append(rollup_inputs(new, new_ids))
    changed = [(i, old) for i, old in decided.updates]
    if changed:
        rows = np.array([i for i, _ in changed], dtype=np.int64)
        new, new_ids = batch.take(rows), ids.take(rows)
        stored_ids = np.array([old.id for _, old in changed], dtype=np.int64)
        replace_facts(conn, new, new_ids, stored_ids, now)
        moved = _moved(new, new_ids, [old.rollup for _, old in changed])
        if len(moved):
            parts.append(rollup_inputs(new.take(moved), new_ids.take(moved)))
            parts.append(inputs_of([changed[i][1].rollup for i in moved.tolist()], -1.0))
    if parts:
        apply_rollups(conn, contributions(concat(parts)))
    result = SinkResult(
        inserted=len(decided.inserts),
        updated=len(decided.updates),
        unchanged=decided.unchanged,
        stale=decided.stale,
    )
    return result, learnt


def _moved(batch: FactBatch, ids: DimIds, old: Sequence[RollupInput]) -> npt.NDArray[np.int64]:
    """Rows whose roll-up input differs from the stored one (the others move nothing)."""
    v = batch.values
    users, accounts = ids.user_id.tolist(), ids.account_id.tolist()
    new = [
        RollupInput(users[i], accounts[i], *(v[c][i] for c in ROLLUP_INPUT_COLUMNS[2:]))
        for i in range(len(batch))
    ]
    return np.array(
        [i for i, (a, b) in enumerate(zip(new, old, strict=True)) if a != b], dtype=np.int64
    )


def _floats(batch: FactBatch, column: str) -> npt.NDArray[np.float64]:
    """A numeric column as float64, NaN where NULL."""
    return np.asarray(batch.arrays[column].to_numpy(zero_copy_only=False), dtype=np.float64)


def rollup_inputs(batch: FactBatch, ids: DimIds, sign: float = 1.0) -> RollupInputs:
    """The roll-up inputs of a batch's facts (``sign`` for each)."""
    n = len(batch)
    return RollupInputs(
        user_id=ids.user_id,
        account_id=ids.account_id,
        submit_epoch=np.fromiter(batch.values["submit_epoch"], dtype=np.int64, count=n),
        start_epoch=np.array(batch.values["start_epoch"], dtype=np.float64).reshape(n),
        end_epoch=np.array(batch.values["end_epoch"], dtype=np.float64).reshape(n),
        cpus=_floats(batch, "cpus"),
        gpus=_floats(batch, "gpus"),
        energy_it_j=_floats(batch, "energy_it_j"),
        energy_facility_j=_floats(batch, "energy_facility_j"),
        co2e_g=_floats(batch, "co2e_g"),
        cost=_floats(batch, "cost"),
        energy_invalid=np.asarray(pc.equal(batch.arrays["jobcomp_energy_status"], "invalid")),
        unreconciled=np.asarray(
            pc.is_in(batch.arrays["reconcile_status"], value_set=_UNRECONCILED_ARRAY)
        ),
        sign=np.full(n, sign),
    )


_STORED_COLUMNS = (
    "id", "cluster_id", "job_id", "submit_epoch", "content_hash", "site", "event",
    *ROLLUP_INPUT_COLUMNS,
)  # fmt: skip


def fetch_stored(conn: Connection, keys: DbKeys) -> dict[tuple[int, int, int], Stored]:
    """What is stored under these keys (locked for update on PostgreSQL), by stored key."""
    rows: list[Any] = []
    if conn.dialect.name == "postgresql":
        rows = stored_rows(conn, keys, _STORED_COLUMNS)
    else:
        wanted = list(zip(*(k.tolist() for k in keys), strict=True))
        rows = rows_by_key(conn, FACT, wanted, _STORED_COLUMNS)
    return {
        (row["cluster_id"], row["job_id"], row["submit_epoch"]): Stored(
            id=row["id"],
            content_hash=row["content_hash"],
            precedence=precedence(row["reconcile_status"], row["site"] is not None, row["event"]),
            rollup=RollupInput(*(row[c] for c in ROLLUP_INPUT_COLUMNS)),
        )
        for row in rows
    }


def fact_values(batch: FactBatch, ids: DimIds, now: datetime) -> list[dict[str, Any]]:
    """The ``fact_job`` rows of a batch (without ``id`` and ``inserted_at``)."""
    rows = batch.rows()
    for row, c, u, a, p, q, h in zip(
        rows, *(i.tolist() for i in ids), batch.content_hash, strict=True
    ):
        row.update(
            cluster_id=c, user_id=u, account_id=a, partition_id=p, qos_id=q, content_hash=h,
            updated_at=now,
        )  # fmt: skip
    return rows


def insert_facts(conn: Connection, batch: FactBatch, ids: DimIds, now: datetime) -> None:
    """Insert new facts and their CO2e rows. PostgreSQL: binary COPY under ids drawn
    beforehand (``pgcopy``). SQLite: one executemany, the ids read back by natural key (not
    ``INSERT ... RETURNING``: in parameter order it costs SQLite one statement per row)."""
    if conn.dialect.name == "postgresql":
        copy_co2e(conn, batch, copy_new_facts(conn, batch, ids, now))
        return
    n = len(batch)
    bound: dict[str, Sequence[Any]] = {}
    for column in TIME_COLUMNS:  # formatted in bulk (the same text as the type's processor)
        texts = datetime_texts(batch.arrays[column])
        if texts is not None:
            bound[column] = texts
    stamp = FACT.c.updated_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert stamp is not None  # UTCDateTime converts every value
    bound.update(updated_at=[stamp(now)] * n, inserted_at=[stamp(now)] * n)
    columns: dict[str, Sequence[Any]] = {c: batch.values[c] for c in FACT_COLUMNS if c not in bound}
    columns.update(
        cluster_id=ids.cluster_id.tolist(),
        user_id=ids.user_id.tolist(),
        account_id=ids.account_id.tolist(),
        partition_id=ids.partition_id.tolist(),
        qos_id=ids.qos_id.tolist(),
        content_hash=batch.content_hash,
    )
    insert_columns(conn, FACT, columns, bound)
    keys = list(zip(*(k.tolist() for k in db_keys(batch, ids)), strict=True))
    found = {
        (r["cluster_id"], r["job_id"], r["submit_epoch"]): r["id"]
        for r in rows_by_key(conn, FACT, keys, ("id", "cluster_id", "job_id", "submit_epoch"))
    }
    insert_co2e(conn, batch, np.array([found[k] for k in keys], dtype=np.int64))


def replace_facts(
    conn: Connection,
    batch: FactBatch,
    ids: DimIds,
    fact_ids: npt.NDArray[np.int64],
    now: datetime,
) -> None:
    """Overwrite stored facts (by id) and replace their CO2e rows."""
    rows = fact_values(batch, ids, now)
    for row, fact_id in zip(rows, fact_ids.tolist(), strict=True):
        row["fact_id_"] = fact_id
    columns = [c for c in rows[0] if c != "fact_id_"]
    stmt = (
        update(FACT)
        .where(FACT.c.id == bindparam("fact_id_"))
        .values({c: bindparam(c) for c in columns})
    )
    conn.execute(stmt, rows)
    stale = fact_ids.tolist()
    for i in range(0, len(stale), _CHUNK):
        conn.execute(delete(CO2E).where(CO2E.c.fact_id.in_(stale[i : i + _CHUNK])))
    insert_co2e(conn, batch, fact_ids)


def insert_co2e(conn: Connection, batch: FactBatch, fact_ids: npt.NDArray[np.int64]) -> None:
    """Insert the CO2e estimates of a batch's facts, stored under ``fact_ids`` (per row)."""
    if conn.dialect.name == "postgresql":
        copy_co2e(conn, batch, fact_ids)
        return
    if len(batch.co2e_row):
        columns: dict[str, Sequence[Any]] = {"fact_id": fact_ids[batch.co2e_row].tolist()}
        columns.update((c, batch.co2e_values[c]) for c in CO2E_FIELDS)
        insert_columns(conn, CO2E, columns)

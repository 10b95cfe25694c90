"""Shell: the bulk path for PostgreSQL backfills, over binary ``COPY``, with exact roll-ups.

Per chunk, in one transaction, ``writer.apply_batch``: one query finds which keys are
stored (locking those rows); new facts are COPYed straight into ``fact_job`` (and their
CO2e rows into ``fact_job_co2e``) and add their whole contribution to the roll-ups; facts
whose key was already stored move the roll-ups by the difference. If the database refuses
anything in a chunk, the chunk is redone through ``write_batch``, which isolates the bad
facts. On SQLite ``copy_facts`` is ``write_facts``.

Client and server work overlap: while one thread waits for the database to take chunk k,
the caller's thread validates chunk k+1 (``batch.build``). Facts of a job that appears more
than once are validated and deduplicated up front, so the outcome is the same as
validating everything first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import Engine

from schemas.fact import JobFact
from warehouse.sink.batch import build_all, latest_per_key
from warehouse.sink.nogc import paused_gc
from warehouse.sink.prepare import LANDABLE_EVENTS
from warehouse.sink.result import Rejected, SinkResult
from warehouse.sink.writer import write_batch, write_facts


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
    with paused_gc():
        return _copy_all(engine, list(facts), default_cluster, chunk_size, now)


def _copy_all(
    engine: Engine,
    facts: list[JobFact],
    default_cluster: str | None,
    chunk_size: int,
    now: datetime | None,
) -> SinkResult:
    work, result, rejected = _settle_duplicates(facts, default_cluster)
    stamp = now or datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-facts") as pool:
        pending: Future[SinkResult] | None = None
        for i in range(0, len(work), chunk_size):
            positions = work[i : i + chunk_size]
            built = build_all([facts[p] for p in positions], default_cluster)
            rejected.extend((positions[p], Rejected(j, r)) for p, j, r in built.rejected)
            batch = latest_per_key(built.batch)  # (cluster, job, submit second) once
            result.duplicates += len(built.batch) - len(batch)
            if pending is not None:
                result += pending.result()
                pending = None
            if len(batch):
                pending = pool.submit(write_batch, engine, batch, stamp)
        if pending is not None:
            result += pending.result()
    result.rejected.extend(r for _, r in sorted(rejected, key=lambda pr: pr[0]))  # input order
    return result


def _settle_duplicates(
    facts: Sequence[JobFact], default_cluster: str | None
) -> tuple[list[int], SinkResult, list[tuple[int, Rejected]]]:
    """The work in first-seen key order as input positions: every fact whose job appears
    once; for a job that appears more than once, its winner (``latest_per_key`` over the
    valid ones, as ``write_facts`` does) at the place of its first appearance. Also the
    counts settled so far (ignored, duplicates) and the repeated facts refused.

    Jobs are told apart here by ``(cluster, job_id, submit_time)``; two submit times in the
    same second are one natural key, which ``_copy_all`` settles within a chunk (and the
    stored key across chunks)."""
    result = SinkResult()
    recs = [f.record for f in facts]
    landable = [r.event in LANDABLE_EVENTS for r in recs]
    keys = list(
        zip(
            [r.cluster or default_cluster for r in recs],
            [r.job_id for r in recs],
            [r.submit_time for r in recs],
            strict=True,
        )
    )
    result.ignored = len(facts) - sum(landable)
    seen = Counter(k for k, ok in zip(keys, landable, strict=True) if ok)
    if len(seen) == len(facts) - result.ignored:  # no job twice: everything as it comes
        return [p for p, ok in enumerate(landable) if ok], result, []
    repeated = [
        p for p, (k, ok) in enumerate(zip(keys, landable, strict=True)) if ok and seen[k] > 1
    ]
    built = build_all([facts[p] for p in repeated], default_cluster)
    rejected = [(repeated[p], Rejected(j, r)) for p, j, r in built.rejected]
    best = latest_per_key(built.batch)
    result.duplicates = len(built.batch) - len(best)
    winners = {keys[repeated[p]]: repeated[p] for p in best.position.tolist()}
    work: list[int] = []
    for position, (ok, key) in enumerate(zip(landable, keys, strict=True)):
        if not ok:
            continue
        if seen[key] == 1:
            work.append(position)
        elif key in winners:
            work.append(winners.pop(key))
    return work, result, rejected

"""The pure pipeline: raw jobcomp bytes -> ``JobRecord`` | ``Rejection`` -> ``JobFact``.

No Kafka, no database, no clock: the faust agents, ``jobcarbon backfill`` and the demo call
these functions and only move data. The enrich and reconcile stages are seams: ``Stages``
holds one callable each and ``stages_for`` (the one place the shells get them from) picks the
real ones. Enrich is the carbon-intensity stage (``consumers.enrich.adapter.make_stage``) over
the worker's local state; reconcile is the slurmdbd stage (``consumers.reconcile.stage``) when
an accounting database is configured, else facts pass through with
``reconciliation.status == "not_checked"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consumers.ingest import DEFAULT_MAX_BYTES, Rejection, normalize_bytes
from consumers.state import EnrichmentState
from jobcarbon.settings import Settings
from schemas.fact import JobFact, fact_from_record
from schemas.job import JobRecord

#: Reason code of a record the enrich stage could not handle (DLQ ``reason``).
ENRICH_FAILED = "enrich_failed"
#: Reason code of a record the reconcile stage could not handle.
RECONCILE_FAILED = "reconcile_failed"


class StageError(ValueError):
    """A record a stage cannot process; the message names the field and value."""


Enrich = Callable[[JobFact, EnrichmentState], JobFact]
Reconcile = Callable[[JobFact], JobFact]
#: Batch forms of the same stages: every fact of a batch, each one's result (or the exception
#: it raised) in its place; what is done once per batch (state, clock, lookups) is done once.
EnrichMany = Callable[[Sequence[JobFact], EnrichmentState], Sequence[JobFact | Exception]]
ReconcileMany = Callable[[Sequence[JobFact]], Sequence[JobFact | Exception]]


def enrich_not_wired(fact: JobFact, state: EnrichmentState) -> JobFact:
    """Placeholder enrich stage: the fact unchanged (``footprint`` stays None)."""
    return fact


def reconcile_not_wired(fact: JobFact) -> JobFact:
    """Placeholder reconcile stage: the fact unchanged (status stays ``not_checked``)."""
    return fact


def reconcile_many_not_wired(facts: Sequence[JobFact]) -> Sequence[JobFact]:
    """Placeholder batch reconcile: the facts unchanged."""
    return facts


@dataclass(frozen=True, slots=True)
class Stages:
    """The stage functions one shell runs with (default: both pass facts through).

    ``enrich_many`` and ``reconcile_many`` are the batch forms ``process_batch`` uses when
    given; they must give what the per-record forms give fact by fact."""

    enrich: Enrich = enrich_not_wired
    reconcile: Reconcile = reconcile_not_wired
    enrich_many: EnrichMany | None = field(default=None, kw_only=True)
    reconcile_many: ReconcileMany | None = field(default=None, kw_only=True)


def stages_for(settings: Settings, clock: Callable[[], datetime]) -> Stages:
    """The stages every shell runs: carbon-intensity enrichment from local state (no remote
    call per record), and reconciliation with slurmdbd when ``settings.accounting.url`` is
    set (a job not yet in slurmdbd lands ``unreconciled``; ``jobcarbon reconcile`` sweeps it
    later). ``clock`` stamps ``computed_at`` and stays outside the pure stages."""
    from consumers.enrich.adapter import make_stage
    from consumers.reconcile.stage import stage_from_settings

    accounting = settings.accounting
    reconcile = stage_from_settings(
        accounting.url,
        settle_s=accounting.settle_seconds,
        timeout_s=accounting.timeout_s,
        backoff_base_s=accounting.backoff_base_s,
        backoff_cap_s=accounting.backoff_cap_s,
        default_cluster=settings.default_cluster,
    )
    enrich = make_stage(settings, clock)
    if reconcile is None:
        return Stages(
            enrich, reconcile_not_wired, enrich_many=enrich.many,
            reconcile_many=reconcile_many_not_wired,
        )  # fmt: skip
    return Stages(enrich, reconcile, enrich_many=enrich.many, reconcile_many=reconcile.many)


def ingest(
    value: bytes | None,
    *,
    default_cluster: str | None = None,
    headers: Mapping[str, bytes] | None = None,
    key: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> JobRecord | Rejection:
    """Stage 1: raw bytes as Slurm sent them (and the patch's key) -> a normalized record or a
    rejection (``oversized`` above ``max_bytes``)."""
    return normalize_bytes(
        value, default_cluster=default_cluster, headers=headers, key=key, max_bytes=max_bytes
    )


def to_fact(
    record: JobRecord, state: EnrichmentState, stages: Stages | None = None
) -> JobFact | Rejection:
    """Stages 2-3: a normalized record -> fact -> enriched -> reconciled, or a rejection whose
    ``raw`` is the normalized record as JSON (the original bytes stay with the ingest DLQ)."""
    stages = stages or Stages()
    fact = fact_from_record(record)
    # Any exception, not just the expected ones: a record a stage cannot handle is dead-
    # lettered, never allowed to crash the shell (a crashed agent would lose its batch).
    try:
        fact = stages.enrich(fact, state)
    except Exception as exc:
        return stage_rejection(ENRICH_FAILED, exc, record)
    try:
        return stages.reconcile(fact)
    except Exception as exc:
        return stage_rejection(RECONCILE_FAILED, exc, record)


def stage_rejection(reason: str, exc: Exception, record: JobRecord) -> Rejection:
    """The dead letter of a record a stage failed on: the exception, and the normalized
    record as JSON (the original bytes stay with the ingest DLQ)."""
    return Rejection(reason, f"{type(exc).__name__}: {exc}", record.to_json())


def process(
    value: bytes | None,
    state: EnrichmentState,
    *,
    default_cluster: str | None = None,
    headers: Mapping[str, bytes] | None = None,
    key: bytes | None = None,
    stages: Stages | None = None,
) -> JobFact | Rejection:
    """The whole path for one raw record (the batch path; the stream splits it at the topic)."""
    record = ingest(value, default_cluster=default_cluster, headers=headers, key=key)
    if isinstance(record, Rejection):
        return record
    return to_fact(record, state, stages)


def split(
    results: Iterable[JobFact | Rejection],
) -> tuple[list[JobFact], list[Rejection]]:
    """Facts and rejections, each in input order."""
    facts: list[JobFact] = []
    rejections: list[Rejection] = []
    for result in results:
        (rejections if isinstance(result, Rejection) else facts).append(result)  # type: ignore[arg-type]
    return facts, rejections


@dataclass(slots=True)
class BatchResult:
    """What one batch of raw records became, each list in input order. ``records`` are the
    normalized ones (for ``jobs.normalized``) with their input index; ``facts`` the ones that
    passed every stage, with theirs; ``rejected`` holds (input index, stage, rejection),
    stage ``ingest`` for the normalizer's reasons and ``sink`` for enrich/reconcile."""

    records: list[tuple[int, JobRecord]]
    facts: list[tuple[int, JobFact]]
    rejected: list[tuple[int, str, Rejection]]


RawItem = tuple[bytes | None, bytes | None, Mapping[str, bytes] | None]


def process_batch(
    items: Iterable[RawItem],
    state: EnrichmentState,
    stages: Stages | None = None,
    *,
    default_cluster: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> BatchResult:
    """Every stage for a batch of raw ``(value, key, headers)``: what ``process`` gives record
    by record, with one ``state`` for the whole batch. Each stage runs over the batch at once
    (its batch form when ``stages`` has one), so per-batch work is done once per batch."""
    stages = stages or Stages()
    result = BatchResult([], [], [])
    records, rejected = result.records, result.rejected
    for index, (value, key, headers) in enumerate(items):
        record = normalize_bytes(
            value, default_cluster=default_cluster, headers=headers, key=key, max_bytes=max_bytes
        )
        if isinstance(record, Rejection):
            rejected.append((index, "ingest", record))
        else:
            records.append((index, record))
    live = [(index, record, fact_from_record(record)) for index, record in records]
    enrich = stages.enrich_many or _one_by_one(stages.enrich)
    live = _survivors(
        live, _outcomes(enrich, [f for _, _, f in live], state), ENRICH_FAILED, rejected
    )
    reconcile = stages.reconcile_many or _one_by_one(stages.reconcile)
    live = _survivors(
        live, _outcomes(reconcile, [f for _, _, f in live]), RECONCILE_FAILED, rejected
    )
    result.facts = [(index, fact) for index, _, fact in live]
    if len(rejected) > 1:
        rejected.sort(key=lambda item: item[0])  # input order, whichever stage refused
    return result


_Live = list[tuple[int, JobRecord, JobFact]]


def _one_by_one(stage: Callable[..., JobFact]) -> Callable[..., list[JobFact | Exception]]:
    """The batch form of a per-record stage: each fact on its own."""

    def many(facts: Sequence[JobFact], *args: Any) -> list[JobFact | Exception]:
        return [_caught(stage, fact, *args) for fact in facts]

    return many


def _caught(stage: Callable[..., JobFact | Exception], *args: Any) -> JobFact | Exception:
    try:
        return stage(*args)
    except Exception as exc:  # dead-lettered by the caller, see ``to_fact``
        return exc


def _outcomes(
    many: Callable[..., Sequence[JobFact | Exception]], facts: list[JobFact], *args: Any
) -> Sequence[JobFact | Exception]:
    """A batch form over ``facts``; if it raises for the batch as a whole, it runs again
    fact by fact, so only the facts it fails on are dead-lettered."""
    if not facts:
        return []
    try:
        return many(facts, *args)
    except Exception:
        return [_caught(lambda f: many([f], *args)[0], fact) for fact in facts]


def _survivors(
    live: _Live,
    outcomes: Sequence[JobFact | Exception],
    reason: str,
    rejected: list[tuple[int, str, Rejection]],
) -> _Live:
    """The facts that passed a stage (with their new value); the failed ones dead-lettered
    (stage ``sink``) with ``reason``."""
    out: _Live = []
    for (index, record, _), outcome in zip(live, outcomes, strict=True):
        if isinstance(outcome, Exception):
            rejected.append((index, "sink", stage_rejection(reason, outcome, record)))
        else:
            out.append((index, record, outcome))
    return out

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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

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


def enrich_not_wired(fact: JobFact, state: EnrichmentState) -> JobFact:
    """Placeholder enrich stage: the fact unchanged (``footprint`` stays None)."""
    return fact


def reconcile_not_wired(fact: JobFact) -> JobFact:
    """Placeholder reconcile stage: the fact unchanged (status stays ``not_checked``)."""
    return fact


@dataclass(frozen=True, slots=True)
class Stages:
    """The stage functions one shell runs with (default: both pass facts through)."""

    enrich: Enrich = enrich_not_wired
    reconcile: Reconcile = reconcile_not_wired


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
    return Stages(
        enrich=make_stage(settings, clock),
        reconcile=reconcile if reconcile is not None else reconcile_not_wired,
    )


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
        return Rejection(ENRICH_FAILED, f"{type(exc).__name__}: {exc}", record.to_json())
    try:
        return stages.reconcile(fact)
    except Exception as exc:
        return Rejection(RECONCILE_FAILED, f"{type(exc).__name__}: {exc}", record.to_json())


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
    """Every stage for a batch of raw ``(value, key, headers)``: the same ``ingest`` and
    ``to_fact`` per record as ``process``, with one ``state`` for the whole batch."""
    stages = stages or Stages()
    result = BatchResult([], [], [])
    for index, (value, key, headers) in enumerate(items):
        record = ingest(
            value, default_cluster=default_cluster, headers=headers, key=key, max_bytes=max_bytes
        )
        if isinstance(record, Rejection):
            result.rejected.append((index, "ingest", record))
            continue
        result.records.append((index, record))
        fact = to_fact(record, state, stages)
        if isinstance(fact, Rejection):
            result.rejected.append((index, "sink", fact))
        else:
            result.facts.append((index, fact))
    return result

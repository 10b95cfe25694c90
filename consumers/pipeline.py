"""The pure pipeline: raw jobcomp bytes -> ``JobRecord`` | ``Rejection`` -> ``JobFact``.

No Kafka, no database, no clock: the faust agents, ``jobcarbon backfill`` and the demo call
these functions and only move data. The enrich and reconcile stages are seams: each is one
module-level name (``ENRICH``, ``RECONCILE``) that the carbon-intensity and reconciliation
work replaces with its own function, a one-line change each. Until then they pass facts
through unchanged, and the fact's provenance says so: ``footprint`` is None (not enriched)
and ``reconciliation.status`` is ``"not_checked"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from consumers.ingest import Rejection, normalize_bytes
from consumers.state import EnrichmentState
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


#: The stage functions (replace with the real ones as they land).
ENRICH: Enrich = enrich_not_wired
RECONCILE: Reconcile = reconcile_not_wired


@dataclass(frozen=True, slots=True)
class Stages:
    """The stage functions one shell runs with (the defaults are the module's)."""

    enrich: Enrich = ENRICH
    reconcile: Reconcile = RECONCILE


def ingest(
    value: bytes | None,
    *,
    default_cluster: str | None = None,
    headers: Mapping[str, bytes] | None = None,
) -> JobRecord | Rejection:
    """Stage 1: raw bytes as Slurm sent them -> a normalized record or a rejection."""
    return normalize_bytes(value, default_cluster=default_cluster, headers=headers)


def to_fact(
    record: JobRecord, state: EnrichmentState, stages: Stages | None = None
) -> JobFact | Rejection:
    """Stages 2-3: a normalized record -> fact -> enriched -> reconciled, or a rejection whose
    ``raw`` is the normalized record as JSON (the original bytes stay with the ingest DLQ)."""
    stages = stages or Stages()
    fact = fact_from_record(record)
    try:
        fact = stages.enrich(fact, state)
    except (StageError, ValueError, ArithmeticError) as exc:
        return Rejection(ENRICH_FAILED, f"{type(exc).__name__}: {exc}", record.to_json())
    try:
        return stages.reconcile(fact)
    except (StageError, ValueError, ArithmeticError) as exc:
        return Rejection(RECONCILE_FAILED, f"{type(exc).__name__}: {exc}", record.to_json())


def process(
    value: bytes | None,
    state: EnrichmentState,
    *,
    default_cluster: str | None = None,
    headers: Mapping[str, bytes] | None = None,
    stages: Stages | None = None,
) -> JobFact | Rejection:
    """The whole path for one raw record (the batch path; the stream splits it at the topic)."""
    record = ingest(value, default_cluster=default_cluster, headers=headers)
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

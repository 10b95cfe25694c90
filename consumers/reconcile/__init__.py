"""Reconcile jobcomp records with slurmdbd (or sacct files): rules, sources, the stage.

For the stream worker: ``ReconcileStage(source, settle_s=...)`` (or ``stage_from_settings``)
``.run(facts_or_pending, now)`` -> ``StageResult(done, retry, errors)``; calling the stage
with one fact is the per-record seam (never holds a fact). See ``docs/reconcile.md``.
"""

from consumers.reconcile.stage import (
    Pending,
    ReconcileStage,
    StageResult,
    stage_from_settings,
    sweep,
)

__all__ = ["Pending", "ReconcileStage", "StageResult", "stage_from_settings", "sweep"]

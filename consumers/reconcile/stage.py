"""The reconcile stage: a batch of ``JobFact`` + an accounting source -> reconciled facts and
the facts to try again later.

The decisions are pure (``find_row``, ``decide``, ``backoff_s``: plain values and a ``now``
passed in); ``ReconcileStage`` only groups the batch, asks the source once per cluster and
turns source trouble into statuses, so the stream never stalls and no job is lost:

* a row is found and final: classified (``classify.judge``), slurmdbd's energy applied;
* no row yet, or the row is not final (steps still running): retried with exponential backoff
  until the settling window (``settle_s`` after the job's end) has passed, then landed as
  ``missing_in_db`` (or classified with the row as it is);
* the database is unreachable, slow or has no tables for the cluster: landed at once as
  ``unreconciled`` with the reason; ``jobcarbon reconcile --since`` sweeps them later;
* a row that cannot be read (odd sentinels, corrupt TRES): ``conflict`` naming the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from consumers.reconcile.accounting import (
    AccountingError,
    AccountingSource,
    check_cluster,
)
from consumers.reconcile.classify import apply, judge, mark
from consumers.reconcile.rules import AccountingRowError, DbJob, sluid_to_db_inx
from schemas.fact import JobFact
from schemas.job import JobRecord

BACKOFF_BASE_S: Final = 5.0
BACKOFF_CAP_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Pending:
    """A fact waiting for its slurmdbd row: try again at ``next_at``; give up (land it) once
    ``deadline_at`` has passed."""

    fact: JobFact
    attempts: int
    next_at: datetime
    deadline_at: datetime


@dataclass
class StageResult:
    """What one run of the stage produced: facts to land, facts to retry, batch-level
    problems (one line each, for logs and metrics)."""

    done: list[JobFact] = field(default_factory=list)
    retry: list[Pending] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- pure core ---------------------------------------------------------------------------------


def _epoch(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def record_inx(record: JobRecord) -> int | None:
    """The record's ``job_db_inx``: the patch's field, or decoded from a 26.05 ``sluid``."""
    if record.job_db_inx:
        return record.job_db_inx
    if record.sluid:
        try:
            return sluid_to_db_inx(record.sluid)
        except ValueError:
            return None
    return None


def find_row(record: JobRecord, by_inx: dict[int, DbJob], runs: Sequence[DbJob]) -> DbJob | None:
    """The row of this job run: by ``job_db_inx``/sluid when the record has one, else by the
    natural key ``(id_job, time_submit)``; a resized job's row by its resize time (= the
    record's start); a record without a submit time (or a row without one) by the exact
    start and end."""
    inx = record_inx(record)
    if inx is not None and inx in by_inx and by_inx[inx].id_job == record.job_id:
        return by_inx[inx]
    submit, start, end = (
        _epoch(record.submit_time),
        _epoch(record.start_time),
        _epoch(record.end_time),
    )
    if submit is not None:
        for row in runs:
            if row.time_submit == submit:
                return row
        if start is not None:
            resized = [r for r in runs if r.time_submit == start == r.time_start]
            if len(resized) == 1:
                return resized[0]
        # Rows whose submit time the source does not know (sacct -P without Submit).
        runs = [r for r in runs if r.time_submit == 0]
    if start is None or end is None:
        return None
    same = [r for r in runs if r.time_start == start and r.time_end == end]
    return same[0] if len(same) == 1 else None


def deadline_for(record: JobRecord, first_seen: datetime, settle_s: float) -> datetime:
    """Settling is counted from the job's end (epilog and late steps follow it)."""
    anchor = record.end_time or first_seen
    return min(anchor, first_seen) + timedelta(seconds=settle_s)


def backoff_s(attempts: int, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """Delay before attempt ``attempts + 1``: base x 2^(attempts-1), capped."""
    return min(cap_s, base_s * (2 ** max(0, attempts - 1)))


def decide(
    fact: JobFact,
    row: DbJob | None,
    *,
    now: datetime,
    deadline_at: datetime,
    attempts: int,
    backoff_base_s: float = BACKOFF_BASE_S,
    backoff_cap_s: float = BACKOFF_CAP_S,
) -> JobFact | Pending:
    """One job's outcome this attempt: a landed fact, or a ``Pending`` to retry."""
    settled = now >= deadline_at
    if row is None:
        if settled:
            return mark(
                fact, "missing_in_db", now, attempts, "no slurmdbd row after the settling window"
            )
        return _pending(fact, now, deadline_at, attempts, backoff_base_s, backoff_cap_s)
    try:
        if not row.settled and not settled:
            return _pending(fact, now, deadline_at, attempts, backoff_base_s, backoff_cap_s)
        verdict = judge(fact.record, row)
        return apply(fact, verdict, row, now, attempts)
    except (AccountingRowError, ValueError) as exc:
        return mark(fact, "conflict", now, attempts, f"slurmdbd row unreadable: {exc}")


def _pending(
    fact: JobFact,
    now: datetime,
    deadline_at: datetime,
    attempts: int,
    base_s: float,
    cap_s: float,
) -> Pending:
    next_at = min(deadline_at, now + timedelta(seconds=backoff_s(attempts, base_s, cap_s)))
    return Pending(fact, attempts, next_at, deadline_at)


# --- the shell around one accounting source ---------------------------------------------------


class ReconcileStage:
    """Reconcile batches of facts against one accounting source.

    ``run(items, now)`` takes new facts and/or ``Pending`` ones (those not yet due are handed
    back untouched) and never raises for source trouble. ``__call__(fact)`` is the
    one-fact form for a per-record seam: it never holds a fact (a job not in the database yet
    lands as ``unreconciled`` for the sweep).
    """

    def __init__(
        self,
        source: AccountingSource,
        *,
        settle_s: float = 600.0,
        default_cluster: str | None = None,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
    ) -> None:
        self.source = source
        self.settle_s = settle_s
        self.default_cluster = default_cluster
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s

    def __call__(self, fact: JobFact) -> JobFact:
        return self.many([fact])[0]

    def many(self, facts: Sequence[JobFact]) -> list[JobFact]:
        """The per-record seam for a whole batch: one lookup per cluster, each fact's
        outcome in its place, none held (a job not in the database yet lands as
        ``unreconciled`` for the sweep)."""
        now = datetime.now(UTC)
        out: list[JobFact] = list(facts)
        for pos, outcome in self._outcomes(facts, now, []):
            if isinstance(outcome, Pending):
                outcome = mark(
                    outcome.fact,
                    "unreconciled",
                    now,
                    outcome.attempts,
                    "not in slurmdbd yet; the reconcile sweep retries",
                )
            out[pos] = outcome
        return out

    def run(self, items: Iterable[JobFact | Pending], now: datetime) -> StageResult:
        """One attempt for every due item; see the module docstring for the outcomes."""
        result = StageResult()
        for _, outcome in self._outcomes(list(items), now, result.errors):
            if isinstance(outcome, Pending):
                result.retry.append(outcome)
            else:
                result.done.append(outcome)
        return result

    def _outcomes(
        self, items: Sequence[JobFact | Pending], now: datetime, errors: list[str]
    ) -> list[tuple[int, JobFact | Pending]]:
        """(position in ``items``, landed fact or ``Pending`` to retry) for every item."""
        out: list[tuple[int, JobFact | Pending]] = []
        due: dict[str, list[tuple[int, Pending]]] = {}
        for pos, item in enumerate(items):
            pending = item if isinstance(item, Pending) else self._new(item, now)
            if pending.fact.record.event == "start":  # a job-start event is not a finished job
                out.append((pos, pending.fact))
                continue
            if pending.next_at > now:
                out.append((pos, pending))
                continue
            cluster = pending.fact.record.cluster or self.default_cluster
            if not cluster:
                out.append(
                    (
                        pos,
                        mark(
                            pending.fact,
                            "unreconciled",
                            now,
                            pending.attempts + 1,
                            "record has no cluster and settings.default_cluster is not set",
                        ),
                    )
                )
                continue
            due.setdefault(cluster, []).append((pos, pending))
        for cluster, batch in due.items():
            out.extend(self._cluster(cluster, batch, now, errors))
        return out

    def _new(self, fact: JobFact, now: datetime) -> Pending:
        return Pending(
            fact,
            fact.reconciliation.attempts,
            now,
            deadline_for(fact.record, now, self.settle_s),
        )

    def _cluster(
        self, cluster: str, batch: list[tuple[int, Pending]], now: datetime, errors: list[str]
    ) -> list[tuple[int, JobFact | Pending]]:
        records = [p.fact.record for _, p in batch]
        inxs = [i for i in (record_inx(r) for r in records) if i is not None]
        try:
            check_cluster(cluster)
            by_inx = (
                {r.job_db_inx: r for r in self.source.fetch_by_inx(cluster, inxs)} if inxs else {}
            )
            # Records found by their job_db_inx need no second lookup by id.
            rest = {
                r.job_id
                for r in records
                if (i := record_inx(r)) is None or i not in by_inx or by_inx[i].id_job != r.job_id
            }
            runs: dict[int, list[DbJob]] = {}
            for row in self.source.fetch(cluster, rest) if rest else ():
                runs.setdefault(row.id_job, []).append(row)
        except (AccountingError, ValueError, OSError) as exc:
            reason = f"accounting source unavailable for cluster {cluster!r}: {exc}"
            errors.append(f"{len(batch)} job(s): {reason}")
            return [
                (pos, mark(pending.fact, "unreconciled", now, pending.attempts + 1, reason))
                for pos, pending in batch
            ]
        out: list[tuple[int, JobFact | Pending]] = []
        for pos, pending in batch:
            record = pending.fact.record
            found = find_row(record, by_inx, runs.get(record.job_id, ()))
            out.append(
                (
                    pos,
                    decide(
                        pending.fact,
                        found,
                        now=now,
                        deadline_at=pending.deadline_at,
                        attempts=pending.attempts + 1,
                        backoff_base_s=self.backoff_base_s,
                        backoff_cap_s=self.backoff_cap_s,
                    ),
                )
            )
        return out


def sweep(
    facts: Sequence[JobFact],
    source: AccountingSource,
    now: datetime,
    default_cluster: str | None = None,
) -> StageResult:
    """Reconcile facts landed earlier (``unreconciled``, ``missing_in_db``, ``not_checked``):
    their settling window is over, so every fact comes back in ``done``."""
    stage = ReconcileStage(source, settle_s=0.0, default_cluster=default_cluster)
    items = [Pending(f, f.reconciliation.attempts, now, now) for f in facts]
    return stage.run(items, now)


def stage_from_settings(
    url: str | None,
    *,
    settle_s: float,
    timeout_s: float = 10.0,
    backoff_base_s: float = BACKOFF_BASE_S,
    backoff_cap_s: float = BACKOFF_CAP_S,
    default_cluster: str | None = None,
) -> ReconcileStage | None:
    """The stage over slurmdbd at ``url`` (``settings.accounting``), or None when no
    accounting database is configured (facts then keep ``not_checked``)::

        a = settings.accounting
        stage = stage_from_settings(a.url, settle_s=a.settle_seconds, timeout_s=a.timeout_s,
                                    backoff_base_s=a.backoff_base_s,
                                    backoff_cap_s=a.backoff_cap_s,
                                    default_cluster=settings.default_cluster)
    """
    if not url:
        return None
    from consumers.reconcile.accounting import SlurmdbdSource

    return ReconcileStage(
        SlurmdbdSource(url, timeout_s=timeout_s),
        settle_s=settle_s,
        default_cluster=default_cluster,
        backoff_base_s=backoff_base_s,
        backoff_cap_s=backoff_cap_s,
    )

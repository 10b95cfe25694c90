"""Pure: a ``JobFact`` -> the row the warehouse stores, validated, or a clear error.

No database and no clock here. The row holds dimension *names*; the shell resolves them to
ids. Every error names the job (``cluster:job_id:submit_epoch``) and the field.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgspec

from schemas.fact import JobFact
from schemas.job import EnergyStatus
from warehouse.models.dims import NONE

INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
#: Events that describe a finished job (a ``start`` event is not a fact).
LANDABLE_EVENTS: Final = frozenset({"end", "energy_update"})
#: Reconciliation outcomes that are final: a later fact without them never overwrites them.
FINAL_RECONCILE: Final = frozenset(
    {"match", "energy_filled", "energy_corrected", "missing_in_db", "conflict"}
)
UNRECONCILED: Final = frozenset({"not_checked", "unreconciled"})

NaturalKey = tuple[str, int, int]


class FactError(ValueError):
    """A fact the warehouse cannot store; the message names the job and the field."""


@dataclass(frozen=True, slots=True)
class Dims:
    """Dimension members of one fact (names; ``NONE`` when the record has none)."""

    cluster: str
    user: str
    uid: int | None
    account: str
    account_parent: str | None
    account_lineage: str | None
    partition: str
    qos: str


@dataclass(frozen=True, slots=True)
class PreparedFact:
    """A validated fact: its natural key, dimensions, ``fact_job`` columns (without ids
    and row timestamps) and ``fact_job_co2e`` rows (without ``fact_id``)."""

    key: NaturalKey
    dims: Dims
    columns: dict[str, Any]
    co2e: tuple[dict[str, Any], ...]
    content_hash: str
    precedence: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``cluster:job_id:submit_epoch``, how errors and reports name the job."""
        return key_label(self.key)


def key_label(key: tuple[Any, Any, Any]) -> str:
    """``cluster:job_id:submit_epoch`` (``?`` for a missing part)."""
    return ":".join("?" if part is None else str(part) for part in key)


def precedence(reconcile_status: str, has_footprint: bool) -> int:
    """How final a fact is: a fact never replaces a stored one of higher precedence, so
    replaying raw records after reconciliation or enrichment changes nothing."""
    return (2 if reconcile_status in FINAL_RECONCILE else 0) + (1 if has_footprint else 0)


def is_landable(fact: JobFact) -> bool:
    """True for finished-job events (``end``, ``energy_update``)."""
    return fact.record.event in LANDABLE_EVENTS


def account_parent(account: str, lineage: str | None) -> str | None:
    """The nearest ancestor in Slurm's lineage path that is not the account itself.

    ``/root/physics/phys000/phys000`` -> ``physics``; ``/root/`` -> None.
    """
    if not lineage:
        return None
    parts = [p for p in lineage.split("/") if p]
    while parts and parts[-1] == account:
        parts.pop()
    # User associations in lineages look like ``0-user``; they are never parents.
    parts = [p for p in parts if not p[:1].isdigit() or "-" not in p]
    return parts[-1] if parts else None


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


class _Checker:
    """Collects field checks for one fact; raises FactError naming the job."""

    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, name: str, value: Any, why: str) -> FactError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return FactError(f"job {self.label}: {name}={shown} {why}")

    def int64(self, name: str, value: int | None, minimum: int = -INT64_MAX - 1) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, value, "is not an integer")
        if not minimum <= value <= INT64_MAX:
            raise self.fail(name, value, f"is out of range [{minimum}, 2^63-1]")
        return value

    def uint64(self, name: str, value: int | None) -> int | None:
        if value is None:
            return None
        if not 0 <= value <= UINT64_MAX:
            raise self.fail(name, value, "is out of range [0, 2^64-1]")
        return value

    def real(
        self,
        name: str,
        value: float | None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        if value is None:
            return None
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(name, value, "is not a finite number")
        if minimum is not None and number < minimum:
            raise self.fail(name, value, f"is below {minimum}")
        if maximum is not None and number > maximum:
            raise self.fail(name, value, f"is above {maximum}")
        return number

    def text(self, name: str, value: str | None) -> str | None:
        if value is None:
            return None
        if "\x00" in value:
            raise self.fail(name, value, "contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(name, value, "is not valid Unicode (lone surrogate)") from None
        return value


def prepare(fact: JobFact, default_cluster: str | None = None) -> PreparedFact:
    """Validate ``fact`` and build its warehouse row. Raises FactError naming the job."""
    rec = fact.record
    cluster = rec.cluster or default_cluster
    epoch = _epoch(rec.submit_time)
    check = _Checker(key_label((cluster, rec.job_id, epoch)))
    if not cluster:
        raise FactError(
            f"job {check.label}: cluster is missing and settings.default_cluster is not set"
        )
    if epoch is None:
        raise FactError(f"job {check.label}: submit_time is missing (part of the natural key)")
    check.int64("job_id", rec.job_id, 0)
    check.int64("submit_epoch", epoch)
    if not is_landable(fact):
        raise FactError(f"job {check.label}: event={rec.event!r} is not a finished job")
    start_epoch, end_epoch = _epoch(rec.start_time), _epoch(rec.end_time)
    if start_epoch is not None and end_epoch is not None and end_epoch < start_epoch:
        raise check.fail("end_time", rec.end_time, f"is before start_time {rec.start_time}")

    account = check.text("account", rec.account) or NONE
    lineage = check.text("parent_accounts", rec.parent_accounts)
    dims = Dims(
        cluster=check.text("cluster", cluster) or NONE,
        user=check.text("user", rec.user) or NONE,
        uid=check.int64("user_id", rec.user_id),
        account=account,
        account_parent=account_parent(account, lineage),
        account_lineage=lineage,
        partition=check.text("partition", rec.partition) or NONE,
        qos=check.text("qos", rec.qos) or NONE,
    )
    if fact.energy_it_j is None and fact.energy_origin != "none":
        raise check.fail("energy_origin", fact.energy_origin, "but energy_it_j is missing")
    columns: dict[str, Any] = {
        "job_id": rec.job_id,
        "submit_epoch": epoch,
        "event": rec.event,
        "record_version": rec.record_version,
        "array_job_id": check.int64("array_job_id", rec.array_job_id),
        "array_task_id": check.int64("array_task_id", rec.array_task_id),
        "het_job_id": check.int64("het_job_id", rec.het_job_id),
        "het_job_offset": check.int64("het_job_offset", rec.het_job_offset),
        "sluid": check.text("sluid", rec.sluid),
        "job_db_inx": check.uint64("job_db_inx", rec.job_db_inx),
        "job_name": check.text("job_name", rec.job_name),
        "uid": dims.uid,
        "group_name": check.text("group", rec.group),
        "gid": check.int64("group_id", rec.group_id),
        "state": check.text("state", rec.state),
        "exit_code": check.text("exit_code", rec.exit_code),
        "derived_exit_code": check.text("derived_exit_code", rec.derived_exit_code),
        "submit_at": rec.submit_time,
        "eligible_at": rec.eligible_time,
        "start_at": rec.start_time,
        "end_at": rec.end_time,
        "start_epoch": start_epoch,
        "end_epoch": end_epoch,
        "elapsed_s": check.int64("elapsed_s", rec.elapsed_s, 0),
        "time_limit_s": check.int64("time_limit_s", rec.time_limit_s),
        "node_count": check.int64("node_count", rec.node_count, 0),
        "nodes": check.text("nodes", rec.nodes),
        "cpus": check.int64("cpus", rec.cpus, 0),
        "gpus": check.int64("gpus", rec.gpus, 0),
        "mem_mb": check.real("mem_mb", rec.mem_mb, 0.0),
        "billing": check.int64("billing", rec.billing),
        "shared_node": fact.shared_node,
        "energy_it_j": check.int64("energy_it_j", fact.energy_it_j, 0),
        "energy_origin": fact.energy_origin,
        "jobcomp_energy_j": check.int64("energy_j", rec.energy_j, 0),
        "jobcomp_energy_status": str(rec.energy_status),
        "jobcomp_energy_source": str(rec.energy_source),
        "energy_reported": check.text("energy_reported", rec.energy_reported),
        "energy_complete": rec.energy_complete,
        "slurm_layout": check.text("slurm_layout", rec.slurm_layout),
        "patched": rec.patched,
    }
    columns.update(_footprint_columns(fact, check))
    columns.update(_reconcile_columns(fact, check))
    co2e = _co2e_rows(fact, check)
    digest = hashlib.blake2b(
        _HASH_ENCODER.encode([sorted(columns.items()), dims, co2e]), digest_size=16
    ).hexdigest()
    return PreparedFact(
        key=(dims.cluster, rec.job_id, epoch),
        dims=dims,
        columns=columns,
        co2e=co2e,
        content_hash=digest,
        precedence=precedence(fact.reconciliation.status, fact.footprint is not None),
    )


def _footprint_columns(fact: JobFact, check: _Checker) -> dict[str, Any]:
    fp = fact.footprint
    acct = fact.accounting_estimate
    if fp is None:
        return dict.fromkeys(_FOOTPRINT_COLUMNS)
    return {
        "site": check.text("footprint.site", fp.site),
        "pue_factor": check.real("footprint.pue_factor", fp.pue_factor, 1.0),
        "pue_source": check.text("footprint.pue_source", fp.pue_source),
        "pue_coverage": check.real("footprint.pue_coverage", fp.pue_coverage, 0.0, 1.0),
        "energy_facility_j": check.real("footprint.energy_facility_j", fp.energy_facility_j, 0.0),
        "co2e_g": None if acct is None else check.real("co2e_g", acct.co2e_g, 0.0),
        "co2e_provider": None if acct is None else acct.provider,
        "co2e_zone": None if acct is None else acct.zone,
        "co2e_factor_g_per_kwh_it": None if acct is None else acct.factor_g_per_kwh_it,
        "co2e_coverage": None if acct is None else acct.coverage,
        "cost": check.real("footprint.cost", fp.cost),
        "currency": check.text("footprint.currency", fp.currency),
        "tariff": check.text("footprint.tariff", fp.tariff),
        "footprint_computed_at": fp.computed_at,
    }


_FOOTPRINT_COLUMNS: Final = (
    "site", "pue_factor", "pue_source", "pue_coverage", "energy_facility_j", "co2e_g",
    "co2e_provider", "co2e_zone", "co2e_factor_g_per_kwh_it", "co2e_coverage", "cost",
    "currency", "tariff", "footprint_computed_at",
)  # fmt: skip


def _reconcile_columns(fact: JobFact, check: _Checker) -> dict[str, Any]:
    rc = fact.reconciliation
    differences = [check.text("reconciliation.differences", d) or "" for d in rc.differences]
    return {
        "db_energy_j": check.int64("reconciliation.db_energy_j", rc.db_energy_j),
        "reconcile_status": rc.status,
        "db_job_db_inx": check.uint64("reconciliation.db_job_db_inx", rc.db_job_db_inx),
        "db_account": check.text("reconciliation.db_account", rc.db_account),
        "db_partition": check.text("reconciliation.db_partition", rc.db_partition),
        "db_state": check.text("reconciliation.db_state", rc.db_state),
        "reconcile_differences": "\n".join(differences) if differences else None,
        "reconciled_at": rc.checked_at,
        "reconcile_attempts": check.int64("reconciliation.attempts", rc.attempts, 0),
    }


def _co2e_rows(fact: JobFact, check: _Checker) -> tuple[dict[str, Any], ...]:
    if fact.footprint is None:
        return ()
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in fact.footprint.estimates:
        series = (e.provider, e.zone, e.signal)
        if series in rows:
            raise check.fail("footprint.estimates", series, "appears twice")
        real, name = check.real, "estimate."
        rows[series] = {
            "provider": check.text(name + "provider", e.provider),
            "zone": check.text(name + "zone", e.zone),
            "signal": e.signal,
            "basis": e.basis,
            "factor_g_per_kwh_it": real(name + "factor_g_per_kwh_it", e.factor_g_per_kwh_it, 0.0),
            "intensity_g_per_kwh": real(name + "intensity_g_per_kwh", e.intensity_g_per_kwh, 0.0),
            "coverage": real(name + "coverage", e.coverage, 0.0, 1.0),
            "fallback": check.text(name + "fallback", e.fallback),
            "estimated_share": real(name + "estimated_share", e.estimated_share, 0.0, 1.0),
            "co2e_g": real(name + "co2e_g", e.co2e_g, 0.0),
        }
    return tuple(rows.values())


_HASH_ENCODER: Final = msgspec.json.Encoder(enc_hook=str)


def energy_quality(energy_it_j: int | None, jobcomp_status: str) -> str:
    """``with_energy``, ``invalid`` (Slurm reported a bogus value and nothing replaced it)
    or ``missing``."""
    if energy_it_j is not None:
        return "with_energy"
    return "invalid" if jobcomp_status == EnergyStatus.INVALID else "missing"


def prepare_all(
    facts: Iterable[JobFact], default_cluster: str | None = None
) -> tuple[list[PreparedFact], list[tuple[str, str]], int]:
    """Prepare every fact: ``(prepared, [(job, reason)] rejected, number ignored)``.

    Facts of events that are not finished jobs (``start``) are ignored, not rejected.
    """
    prepared: list[PreparedFact] = []
    rejected: list[tuple[str, str]] = []
    ignored = 0
    for fact in facts:
        if not is_landable(fact):
            ignored += 1
            continue
        try:
            prepared.append(prepare(fact, default_cluster))
        except (ValueError, TypeError, OverflowError) as exc:  # FactError, or a malformed fact
            rec = fact.record
            label = key_label((rec.cluster or default_cluster, rec.job_id, _epoch(rec.submit_time)))
            reason = str(exc) if isinstance(exc, FactError) else f"job {label}: {exc!r}"
            rejected.append((label, reason))
    return prepared, rejected, ignored

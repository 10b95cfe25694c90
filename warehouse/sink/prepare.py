"""Pure: a ``JobFact`` -> the row the warehouse stores, validated, or a clear error.

No database and no clock here. The row holds dimension *names*; the shell resolves them to
ids. Every error names the job (``cluster:job_id:submit_epoch``) and the field.
"""

from __future__ import annotations

import sys
from datetime import datetime
from functools import lru_cache
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


class Dims(msgspec.Struct, frozen=True):
    """Dimension members of one fact (names; ``NONE`` when the record has none)."""

    cluster: str
    user: str
    uid: int | None
    account: str
    account_parent: str | None
    account_lineage: str | None
    partition: str
    qos: str


# msgspec structs, not frozen dataclasses: built for every fact, and a frozen dataclass
# costs ~2 us to construct (one object.__setattr__ per field) against ~0.2 us.
class PreparedFact(msgspec.Struct, frozen=True):
    """A validated fact: its natural key, dimensions, ``fact_job`` columns (without ids
    and row timestamps) and ``fact_job_co2e`` rows (without ``fact_id``)."""

    key: NaturalKey
    dims: Dims
    columns: dict[str, Any]
    co2e: tuple[dict[str, Any], ...]
    content_hash: str
    precedence: int
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def label(self) -> str:
        """``cluster:job_id:submit_epoch``, how errors and reports name the job."""
        return key_label(self.key)


def key_label(key: tuple[Any, Any, Any]) -> str:
    """``cluster:job_id:submit_epoch`` (``?`` for a missing part)."""
    cluster, job_id, epoch = key  # an f-string: this runs for every fact
    return f"{'?' if cluster is None else cluster}:{'?' if job_id is None else job_id}:" + (
        "?" if epoch is None else str(epoch)
    )


def precedence(reconcile_status: str, has_footprint: bool, event: str = "end") -> int:
    """How final a fact is: a fact never replaces a stored one of higher precedence, so
    replaying raw records after reconciliation or enrichment changes nothing.

    Final reconciliation outranks a footprint, which outranks the event kind: the patch's
    ``energy_update`` (final energy, sent after the end record) outranks ``end``.
    """
    return (
        (4 if reconcile_status in FINAL_RECONCILE else 0)
        + (2 if has_footprint else 0)
        + (1 if event == "energy_update" else 0)
    )


def is_landable(fact: JobFact) -> bool:
    """True for finished-job events (``end``, ``energy_update``)."""
    return fact.record.event in LANDABLE_EVENTS


@lru_cache(maxsize=4096)  # few distinct (account, lineage) pairs; called for every fact
def account_parent(account: str, lineage: str | None) -> str | None:
    """The nearest ancestor in Slurm's lineage path that is not the account itself.

    ``/root/physics/phys000/phys000`` -> ``physics``; ``/root/`` -> None.
    """
    if not lineage:
        return None
    # User associations in lineages look like ``0-user``; they are never parents.
    parts = [p for p in lineage.split("/") if p and not (p[:1].isdigit() and "-" in p)]
    while parts and parts[-1] == account:
        parts.pop()
    return parts[-1] if parts else None


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _fail(label: str, name: str, value: Any, why: str) -> FactError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return FactError(f"job {label}: {name}={shown} {why}")


_I64: Final = (-INT64_MAX - 1, INT64_MAX)
_N64: Final = (0, INT64_MAX)
_N32: Final = (0, 2**31 - 1)  # INTEGER columns
_MAXF: Final = sys.float_info.max
#: Integer columns and their ranges (BIGINT, INTEGER, or NUMERIC(20) for job_db_inx).
INT_RULES: Final[dict[str, tuple[int, int]]] = {
    "job_id": _N64, "submit_epoch": _I64, "record_version": _N32, "array_job_id": _I64,
    "array_task_id": _I64, "het_job_id": _I64, "het_job_offset": _I64,
    "job_db_inx": (0, UINT64_MAX), "uid": _I64, "gid": _I64, "start_epoch": _I64,
    "end_epoch": _I64, "elapsed_s": _N64, "time_limit_s": _I64, "node_count": _N64,
    "cpus": _N64, "gpus": _N64, "billing": _I64, "energy_it_j": _N64,
    "jobcomp_energy_j": _N64, "db_energy_j": _I64, "db_job_db_inx": (0, UINT64_MAX),
    "reconcile_attempts": _N32,
}  # fmt: skip
#: Float columns and their ranges (finite: NaN and infinities fail the range test).
REAL_RULES: Final[dict[str, tuple[float, float]]] = {
    "mem_mb": (0.0, _MAXF), "pue_factor": (1.0, _MAXF), "pue_coverage": (0.0, 1.0),
    "energy_facility_j": (0.0, _MAXF), "co2e_g": (0.0, _MAXF),
    "co2e_factor_g_per_kwh_it": (0.0, _MAXF), "co2e_coverage": (0.0, 1.0),
    "cost": (-_MAXF, _MAXF),
}  # fmt: skip
CO2E_RULES: Final[dict[str, tuple[float, float]]] = {
    "factor_g_per_kwh_it": (0.0, _MAXF), "intensity_g_per_kwh": (0.0, _MAXF),
    "coverage": (0.0, 1.0), "estimated_share": (0.0, 1.0), "co2e_g": (0.0, _MAXF),
}  # fmt: skip


#: The rules flattened once (this loop runs for every fact).
_COLUMN_RULES: Final = tuple(
    (n, lo, hi) for r in (INT_RULES, REAL_RULES) for n, (lo, hi) in r.items()
)
_CO2E_RULES: Final = tuple((n, lo, hi) for n, (lo, hi) in CO2E_RULES.items())


def _check_ranges(label: str, columns: dict[str, Any], co2e: tuple[dict[str, Any], ...]) -> None:
    for name, low, high in _COLUMN_RULES:
        value = columns[name]
        if value is not None and not low <= value <= high:
            raise _fail(label, name, value, f"is out of range [{low}, {high}]")
    for row in co2e:
        for name, low, high in _CO2E_RULES:
            value = row[name]
            if value is not None and not low <= value <= high:
                raise _fail(label, f"estimate.{name}", value, f"is out of range [{low}, {high}]")


def _check_text(label: str, name: str, value: Any) -> None:
    if not isinstance(value, str):
        return
    if "\x00" in value:
        raise _fail(label, name, value, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(label, name, value, "is not valid Unicode (lone surrogate)") from None


def _explain_text(
    label: str, columns: dict[str, Any], dims: Dims, co2e: tuple[dict[str, Any], ...]
) -> None:
    """The slow path behind the encoder's screen: name the first bad text field."""
    for name in Dims.__struct_fields__:
        _check_text(label, name, getattr(dims, name))
    for name, value in columns.items():
        _check_text(label, name, value)
    for row in co2e:
        for name, value in row.items():
            _check_text(label, f"estimate.{name}", value)


def _dims_tuple(d: Dims) -> tuple[Any, ...]:
    return (d.cluster, d.user, d.uid, d.account, d.account_parent, d.account_lineage,
            d.partition, d.qos)  # fmt: skip


def prepare(
    fact: JobFact, default_cluster: str | None = None, *, hashed: bool = True
) -> PreparedFact:
    """Validate ``fact`` and build its warehouse row. Raises FactError naming the job.

    Checks: the natural key is complete, the event is a finished job, the run window is
    ordered, integers fit their columns, floats are finite and in range, text has no NUL
    and is valid Unicode (screened through a JSON encoding, explained per field).
    ``hashed=False`` leaves ``content_hash`` empty (for callers that only need the row).
    """
    rec = fact.record
    cluster = rec.cluster or default_cluster
    epoch = _epoch(rec.submit_time)
    label = key_label((cluster, rec.job_id, epoch))
    if not cluster:
        raise FactError(f"job {label}: cluster is missing and settings.default_cluster is not set")
    if epoch is None:
        raise FactError(f"job {label}: submit_time is missing (part of the natural key)")
    if not is_landable(fact):
        raise FactError(f"job {label}: event={rec.event!r} is not a finished job")
    start_epoch, end_epoch = _epoch(rec.start_time), _epoch(rec.end_time)
    if start_epoch is not None and end_epoch is not None and end_epoch < start_epoch:
        raise _fail(label, "end_time", rec.end_time, f"is before start_time {rec.start_time}")
    if fact.energy_it_j is None and fact.energy_origin != "none":
        raise _fail(label, "energy_origin", fact.energy_origin, "but energy_it_j is missing")

    account = rec.account or NONE
    dims = Dims(
        cluster=cluster,
        user=rec.user or NONE,
        uid=rec.user_id,
        account=account,
        account_parent=account_parent(account, rec.parent_accounts),
        account_lineage=rec.parent_accounts,
        partition=rec.partition or NONE,
        qos=rec.qos or NONE,
    )
    columns: dict[str, Any] = {
        "job_id": rec.job_id,
        "submit_epoch": epoch,
        "event": rec.event,
        "record_version": rec.record_version,
        "array_job_id": rec.array_job_id,
        "array_task_id": rec.array_task_id,
        "het_job_id": rec.het_job_id,
        "het_job_offset": rec.het_job_offset,
        "sluid": rec.sluid,
        "job_db_inx": rec.job_db_inx,
        "job_name": rec.job_name,
        "uid": rec.user_id,
        "group_name": rec.group,
        "gid": rec.group_id,
        "state": rec.state,
        "exit_code": rec.exit_code,
        "derived_exit_code": rec.derived_exit_code,
        "submit_at": rec.submit_time,
        "eligible_at": rec.eligible_time,
        "start_at": rec.start_time,
        "end_at": rec.end_time,
        "start_epoch": start_epoch,
        "end_epoch": end_epoch,
        "elapsed_s": rec.elapsed_s,
        "time_limit_s": rec.time_limit_s,
        "node_count": rec.node_count,
        "nodes": rec.nodes,
        "cpus": rec.cpus,
        "gpus": rec.gpus,
        "mem_mb": rec.mem_mb,
        "billing": rec.billing,
        "shared_node": fact.shared_node,
        "energy_it_j": fact.energy_it_j,
        "energy_origin": fact.energy_origin,
        "jobcomp_energy_j": rec.energy_j,
        "jobcomp_energy_status": str(rec.energy_status),
        "jobcomp_energy_source": str(rec.energy_source),
        "energy_reported": rec.energy_reported,
        "energy_complete": rec.energy_complete,
        "slurm_layout": rec.slurm_layout,
        "patched": rec.patched,
    }
    columns.update(_footprint_columns(fact))
    columns.update(_reconcile_columns(fact))
    co2e = _co2e_rows(fact, label)
    _check_ranges(label, columns, co2e)
    encoded: bytes | None
    try:
        encoded = _TEXT_SCREEN.encode(
            (list(columns.values()), _dims_tuple(dims), [list(r.values()) for r in co2e])
        )
    except (UnicodeEncodeError, TypeError, ValueError):
        encoded = None
    if encoded is None or b"\\u0000" in encoded:
        _explain_text(label, columns, dims, co2e)
        if encoded is None:
            raise FactError(f"job {label}: a field cannot be encoded")
    return PreparedFact(
        key=(cluster, rec.job_id, epoch),
        dims=dims,
        columns=columns,
        co2e=co2e,
        content_hash=content_hash_of(columns, dims, co2e) if hashed else "",
        precedence=precedence(fact.reconciliation.status, fact.footprint is not None, rec.event),
    )


def _footprint_columns(fact: JobFact) -> dict[str, Any]:
    fp = fact.footprint
    if fp is None:
        return dict.fromkeys(FOOTPRINT_FIELDS)
    acct = fact.accounting_estimate
    return {
        "site": fp.site,
        "pue_factor": fp.pue_factor,
        "pue_source": fp.pue_source,
        "pue_coverage": fp.pue_coverage,
        "energy_facility_j": fp.energy_facility_j,
        "co2e_g": None if acct is None else acct.co2e_g,
        "co2e_provider": None if acct is None else acct.provider,
        "co2e_zone": None if acct is None else acct.zone,
        "co2e_factor_g_per_kwh_it": None if acct is None else acct.factor_g_per_kwh_it,
        "co2e_coverage": None if acct is None else acct.coverage,
        "cost": fp.cost,
        "currency": fp.currency,
        "tariff": fp.tariff,
        "footprint_computed_at": fp.computed_at,
    }


#: ``fact_job`` columns the footprint fills, in order.
FOOTPRINT_FIELDS: Final = (
    "site", "pue_factor", "pue_source", "pue_coverage", "energy_facility_j", "co2e_g",
    "co2e_provider", "co2e_zone", "co2e_factor_g_per_kwh_it", "co2e_coverage", "cost",
    "currency", "tariff", "footprint_computed_at",
)  # fmt: skip


def _reconcile_columns(fact: JobFact) -> dict[str, Any]:
    rc = fact.reconciliation
    return {
        "db_energy_j": rc.db_energy_j,
        "reconcile_status": rc.status,
        "db_job_db_inx": rc.db_job_db_inx,
        "db_account": rc.db_account,
        "db_partition": rc.db_partition,
        "db_state": rc.db_state,
        "reconcile_differences": "\n".join(rc.differences) if rc.differences else None,
        "reconciled_at": rc.checked_at,
        "reconcile_attempts": rc.attempts,
    }


def _co2e_rows(fact: JobFact, label: str) -> tuple[dict[str, Any], ...]:
    if fact.footprint is None:
        return ()
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in fact.footprint.estimates:
        series = (e.provider, e.zone, e.signal)
        if series in rows:
            raise _fail(label, "footprint.estimates", series, "appears twice")
        rows[series] = {
            "provider": e.provider,
            "zone": e.zone,
            "signal": e.signal,
            "basis": e.basis,
            "factor_g_per_kwh_it": e.factor_g_per_kwh_it,
            "intensity_g_per_kwh": e.intensity_g_per_kwh,
            "coverage": e.coverage,
            "fallback": e.fallback,
            "estimated_share": e.estimated_share,
            "co2e_g": e.co2e_g,
        }
    return tuple(rows.values())


#: Screens a fact's text: encoding fails on a lone surrogate, and shows a NUL as ``\u0000``.
_TEXT_SCREEN: Final = msgspec.json.Encoder()


def content_hash_of(columns: dict[str, Any], dims: Dims, co2e: tuple[dict[str, Any], ...]) -> str:
    """The stored ``content_hash`` of one prepared fact (``warehouse.sink.hashing``)."""
    from warehouse.sink.hashing import content_hash_of as hash_of  # hashing reads the rules here

    return hash_of(columns, dims, co2e)


#: ``fact_job`` columns of a prepared fact, in order (``PreparedFact.columns``).
FACT_COLUMNS: Final = (
    "job_id", "submit_epoch", "event", "record_version", "array_job_id", "array_task_id",
    "het_job_id", "het_job_offset", "sluid", "job_db_inx", "job_name", "uid", "group_name",
    "gid", "state", "exit_code", "derived_exit_code", "submit_at", "eligible_at", "start_at",
    "end_at", "start_epoch", "end_epoch", "elapsed_s", "time_limit_s", "node_count", "nodes",
    "cpus", "gpus", "mem_mb", "billing", "shared_node", "energy_it_j", "energy_origin",
    "jobcomp_energy_j", "jobcomp_energy_status", "jobcomp_energy_source", "energy_reported",
    "energy_complete", "slurm_layout", "patched", *FOOTPRINT_FIELDS, "db_energy_j",
    "reconcile_status", "db_job_db_inx", "db_account", "db_partition", "db_state",
    "reconcile_differences", "reconciled_at", "reconcile_attempts",
)  # fmt: skip
#: ``fact_job_co2e`` columns of an estimate (without ``fact_id``), in order.
CO2E_FIELDS: Final = (
    "provider", "zone", "signal", "basis", "factor_g_per_kwh_it", "intensity_g_per_kwh",
    "coverage", "fallback", "estimated_share", "co2e_g",
)  # fmt: skip
BOOL_COLUMNS: Final = ("shared_node", "energy_complete", "patched")
TIME_COLUMNS: Final = (
    "submit_at", "eligible_at", "start_at", "end_at", "footprint_computed_at", "reconciled_at",
)  # fmt: skip
#: Text columns: everything that is not a number, a flag or a timestamp.
TEXT_COLUMNS: Final = tuple(
    c for c in FACT_COLUMNS
    if c not in INT_RULES and c not in REAL_RULES and c not in BOOL_COLUMNS
    and c not in TIME_COLUMNS
)  # fmt: skip


def energy_quality(energy_it_j: int | None, jobcomp_status: str) -> str:
    """``with_energy``, ``invalid`` (Slurm reported a bogus value and nothing replaced it)
    or ``missing``."""
    if energy_it_j is not None:
        return "with_energy"
    return "invalid" if jobcomp_status == EnergyStatus.INVALID else "missing"


def raw_key(fact: JobFact, default_cluster: str | None = None) -> NaturalKey | None:
    """The natural key ``prepare`` would give ``fact`` (None when a part is missing)."""
    rec = fact.record
    cluster = rec.cluster or default_cluster
    epoch = _epoch(rec.submit_time)
    if not cluster or epoch is None:
        return None
    return (cluster, rec.job_id, epoch)

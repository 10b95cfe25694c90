"""Compare a jobcomp ``JobRecord`` with its slurmdbd row and classify the job (pure).

Statuses (``schemas.fact.ReconcileStatus``):

* ``match``: the row agrees with the record (energy included, or neither has energy);
* ``energy_filled``: the record had no usable energy, slurmdbd's final value is used;
* ``energy_corrected``: both had energy and slurmdbd's (authoritative) differs;
* ``conflict``: identity fields disagree (state, exit code, times, account, partition,
  ids...), or slurmdbd has no usable energy where the record has one; slurmdbd's energy is still
  used when it has one, since the row is the same job (same ``(id_job, time_submit)``);
* ``missing_in_db``: no row once the settling window has passed.

``differences`` names each differing field with both values: ``"field: jobcomp=X db=Y"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from consumers.reconcile.rules import (
    DbJob,
    Energy,
    db_array,
    db_het,
    decode_exit,
    derived_exit_agrees,
    exit_codes_agree,
    parent_accounts_path,
    partition_agrees,
    state_name,
    states_agree,
)
from schemas.fact import JobFact, ReconcileStatus, Reconciliation, with_energy
from schemas.job import EnergyStatus, JobRecord

_VALUE_CHARS: Final = 80


def _show(value: object) -> str:
    """A short, escaped rendering for ``differences`` (they end up in logs and UIs)."""
    if value is None:
        return "none"
    text = value if isinstance(value, str) else str(value)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "..."


def _epoch(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def _iso(epoch: int) -> str:
    if epoch <= 0:
        return "unset"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _diff(name: str, jobcomp: object, db: object) -> str:
    return f"{name}: jobcomp={_show(jobcomp)} db={_show(db)}"


def identity_differences(record: JobRecord, row: DbJob) -> list[str]:
    """Every identity field on which the record and the row disagree (fields the record
    does not carry are not compared)."""
    out: list[str] = []
    if record.state is not None and not states_agree(record.state, row.state):
        out.append(_diff("state", record.state, f"{state_name(row.state)} ({row.state})"))
    if not exit_codes_agree(record.exit_code, row.exit_code):
        out.append(_diff("exit_code", record.exit_code, decode_exit(row.exit_code)))
    if not derived_exit_agrees(record.derived_exit_code, row.derived_ec):
        out.append(
            _diff("derived_exit_code", record.derived_exit_code, decode_exit(row.derived_ec))
        )
    for name, mine, theirs in (
        ("start_time", _epoch(record.start_time), row.time_start),
        ("end_time", _epoch(record.end_time), row.time_end),
    ):
        if mine is not None and mine != theirs:
            out.append(_diff(name, _iso(mine), _iso(theirs)))
    if record.account is not None and row.account is not None and record.account != row.account:
        out.append(_diff("account", record.account, row.account))
    if record.parent_accounts and row.account_path is not None:
        path = parent_accounts_path(record.parent_accounts)
        if path and path != row.account_path:
            out.append(_diff("parent_accounts", "/".join(path), "/".join(row.account_path)))
    if not partition_agrees(record.partition, record.partitions_requested, row.partition):
        wanted = record.partition or ",".join(record.partitions_requested or ())
        out.append(_diff("partition", wanted, row.partition))
    if record.qos is not None and row.qos is not None and record.qos != row.qos:
        out.append(_diff("qos", record.qos, row.qos))
    for name, mine_id, theirs_id in (
        ("user_id", record.user_id, row.id_user),
        ("group_id", record.group_id, row.id_group),
    ):
        if mine_id is not None and theirs_id is not None and mine_id != theirs_id:
            out.append(_diff(name, mine_id, theirs_id))
    array = db_array(row.id_array_job, row.id_array_task)
    if record.array_job_id is not None and (record.array_job_id, record.array_task_id) != array:
        out.append(_diff("array", (record.array_job_id, record.array_task_id), array))
    het = db_het(row.het_job_id, row.het_job_offset)
    if (record.het_job_id, record.het_job_offset) != het and (
        record.het_job_id is not None or het[0] is not None
    ):
        out.append(_diff("het_job", (record.het_job_id, record.het_job_offset), het))
    if record.job_name is not None and row.job_name and record.job_name != row.job_name:
        out.append(_diff("job_name", record.job_name, row.job_name))
    if record.nodes and row.nodelist and record.nodes != row.nodelist:
        out.append(_diff("nodes", record.nodes, row.nodelist))
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """What reconciliation decided for one job (before it is applied to the fact)."""

    status: ReconcileStatus
    energy_j: int | None  # the energy the fact should carry
    use_db_energy: bool
    differences: tuple[str, ...]


def _energy_text(energy: Energy) -> str:
    if energy.joules is not None:
        return str(energy.joules)
    return f"{energy.status.value}" + (f"({energy.reported})" if energy.reported else "")


#: States slurmctld records before the job's steps have ended (the timing trap of
#: slurm-jobcomp-record.md §8): their exit codes reach only slurmdbd, so a differing exit
#: code is expected there (seen on a real 24.11 cluster: jobcomp 0:15, slurmdbd 0:0).
ENDED_BEFORE_STEPS: Final = frozenset(
    {"CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "DEADLINE"}
)
EXPECTED_NOTE: Final = " (expected: the job ended before its steps)"


def _explain(record: JobRecord, differences: list[str]) -> tuple[list[str], list[str]]:
    """(all differences, with expected ones marked; those that make a job a conflict)."""
    shown: list[str] = []
    blocking: list[str] = []
    for diff in differences:
        if record.state in ENDED_BEFORE_STEPS and diff.startswith(
            ("exit_code:", "derived_exit_code:")
        ):
            shown.append(diff + EXPECTED_NOTE)
        else:
            shown.append(diff)
            blocking.append(diff)
    return shown, blocking


def judge(record: JobRecord, row: DbJob) -> Verdict:
    """Classify one record against its row (both present)."""
    differences, blocking = _explain(record, identity_differences(record, row))
    db = row.energy
    mine_usable = record.energy_status is EnergyStatus.MEASURED and record.energy_j is not None
    mine = Energy(record.energy_j, record.energy_status, record.energy_reported)
    if db.usable:
        if mine_usable and record.energy_j != db.joules:
            differences.append(_diff("energy_j", record.energy_j, db.joules))
            status: ReconcileStatus = "conflict" if blocking else "energy_corrected"
        elif blocking:
            status = "conflict"
        else:
            status = "match" if mine_usable else "energy_filled"
        return Verdict(status, db.joules, True, tuple(differences))
    # slurmdbd has no usable energy.
    if mine_usable:
        differences.append(_diff("energy_j", record.energy_j, _energy_text(db)))
        return Verdict("conflict", record.energy_j, False, tuple(differences))
    if db.status is EnergyStatus.INVALID and mine.status is not EnergyStatus.INVALID:
        blocking.append(_diff("energy_j", _energy_text(mine), _energy_text(db)))
        differences.append(blocking[-1])
    status = "conflict" if blocking else "match"
    return Verdict(status, None, False, tuple(differences))


def apply(
    fact: JobFact,
    verdict: Verdict,
    row: DbJob | None,
    checked_at: datetime,
    attempts: int,
) -> JobFact:
    """The fact with its ``Reconciliation`` set and, when slurmdbd's energy is used, its energy
    (and every CO2e estimate) through ``with_energy``."""
    if verdict.use_db_energy:
        fact = with_energy(fact, verdict.energy_j, "slurmdbd")
    reconciliation = Reconciliation(
        status=verdict.status,
        db_energy_j=None if row is None else row.energy.joules,
        db_job_db_inx=None if row is None else row.job_db_inx,
        db_account=None if row is None else row.account,
        db_partition=None if row is None else row.partition or None,
        db_state=None if row is None else state_name(row.state),
        differences=verdict.differences,
        checked_at=checked_at,
        attempts=attempts,
    )
    return msgspec.structs.replace(fact, reconciliation=reconciliation)


def mark(
    fact: JobFact,
    status: ReconcileStatus,
    checked_at: datetime,
    attempts: int,
    why: str | None = None,
) -> JobFact:
    """The fact with a row-less status (``missing_in_db``, ``unreconciled``)."""
    reconciliation = Reconciliation(
        status=status,
        differences=(why,) if why else (),
        checked_at=checked_at,
        attempts=attempts,
    )
    return msgspec.structs.replace(fact, reconciliation=reconciliation)

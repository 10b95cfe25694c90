"""Job energies as the report needs them, from normalized records (or warehouse rows)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.hostlist import HostlistError, expand_hostlist
from schemas.job import EnergyStatus, JobRecord, JobRecordError, job_record_from_json
from warehouse.reports.quality import QualityIssue, show

JobEnergyStatus = Literal["measured", "zero", "missing", "invalid"]


@dataclass(frozen=True, slots=True)
class JobEnergy:
    """One job run: where and when it ran and the energy Slurm reported (J, all nodes)."""

    key: str  # cluster:job_id:submit_epoch
    job_id: int
    partition: str | None
    nodes: tuple[str, ...]
    start_s: float  # epoch seconds
    end_s: float
    energy_j: float | None  # None unless status is measured or zero
    status: JobEnergyStatus
    complete: bool | None = None  # False: the record was written before energy was final
    exclusive: bool | None = None
    user: str | None = None
    account: str | None = None

    @property
    def usable(self) -> bool:
        """Has an energy the report can attribute."""
        return self.energy_j is not None


def job_energy_from_record(record: JobRecord) -> JobEnergy | QualityIssue:
    """The report's view of a normalized record; a finding when it cannot be placed."""
    subject = f"job {record.message_key}"
    if record.start_time is None or record.end_time is None:
        return QualityIssue(kind="invalid_job", subject=subject, detail="no start or end time")
    try:
        nodes = tuple(expand_hostlist(record.nodes))
    except HostlistError as exc:
        return QualityIssue(kind="invalid_job", subject=subject, detail=f"nodes: {exc}")
    start_s, end_s = record.start_time.timestamp(), record.end_time.timestamp()
    if end_s < start_s:
        return QualityIssue(
            kind="invalid_job",
            subject=subject,
            detail=f"end_time {record.end_time.isoformat()} before start_time",
        )
    status: JobEnergyStatus
    energy: float | None = None
    if record.energy_status is EnergyStatus.MEASURED and record.energy_j is not None:
        energy = float(record.energy_j)
        status = "zero" if energy == 0 else "measured"
    elif record.energy_status is EnergyStatus.INVALID:
        status = "invalid"
    else:
        status = "missing"
    return JobEnergy(
        key=record.message_key,
        job_id=record.job_id,
        partition=record.partition,
        nodes=nodes,
        start_s=start_s,
        end_s=end_s,
        energy_j=energy,
        status=status,
        complete=record.energy_complete,
        exclusive=record.exclusive,
        user=record.user,
        account=record.account,
    )


def job_energies_from_lines(
    lines: Iterable[bytes], window: tuple[datetime, datetime] | None = None
) -> tuple[list[JobEnergy], list[QualityIssue]]:
    """Parse normalized JSON lines (``jobcarbon normalize`` output). Only finished jobs
    (``event == "end"``) that overlap ``window`` are kept; bad lines become findings."""
    jobs: list[JobEnergy] = []
    issues: list[QualityIssue] = []
    lo, hi = (w.timestamp() for w in window) if window else (float("-inf"), float("inf"))
    for number, line in _numbered(lines):
        try:
            record = job_record_from_json(line)
        except JobRecordError as exc:
            issues.append(
                QualityIssue(
                    kind="invalid_job",
                    subject=f"line {number}",
                    detail=f"{exc}; line starts {show(line[:80])}",
                )
            )
            continue
        if record.event != "end":
            continue
        result = job_energy_from_record(record)
        if isinstance(result, QualityIssue):
            issues.append(result)
        elif result.end_s >= lo and result.start_s <= hi:
            jobs.append(result)
    return jobs, issues


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line

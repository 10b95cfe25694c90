"""Normalized records to the report's job energies; records that cannot be placed are
findings that name the job and the field, never silently dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.job import EnergyStatus, JobRecord
from warehouse.reports.jobs import job_energies_from_lines, job_energy_from_record
from warehouse.reports.quality import QualityIssue

T = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)


def record(**kw: object) -> JobRecord:
    base: dict[str, object] = {
        "cluster": "alps",
        "job_id": 7,
        "submit_time": T,
        "start_time": T,
        "end_time": T.replace(hour=21),
        "nodes": "cn[01-02]",
        "energy_j": 3_600,
        "energy_status": EnergyStatus.MEASURED,
    }
    base.update(kw)
    return JobRecord(**base)  # type: ignore[arg-type]


def test_measured_zero_missing_invalid() -> None:
    job = job_energy_from_record(record())
    assert not isinstance(job, QualityIssue)
    assert job.nodes == ("cn01", "cn02") and job.energy_j == 3_600 and job.status == "measured"
    assert job.end_s - job.start_s == 3_600 and job.key == f"alps:7:{int(T.timestamp())}"
    zero = job_energy_from_record(record(energy_j=0))
    assert not isinstance(zero, QualityIssue) and zero.status == "zero"
    missing = job_energy_from_record(record(energy_j=None, energy_status=EnergyStatus.MISSING))
    assert not isinstance(missing, QualityIssue) and missing.energy_j is None
    assert missing.status == "missing"
    bogus = record(energy_j=None, energy_status=EnergyStatus.INVALID, energy_reported="1e19")
    invalid = job_energy_from_record(bogus)
    assert not isinstance(invalid, QualityIssue) and invalid.status == "invalid"


def test_unplaceable_records_are_findings() -> None:
    cases = [
        (record(start_time=None), "no start or end time"),
        (record(nodes="cn[05-01]"), "runs backwards"),
        (record(end_time=T.replace(hour=19)), "before start_time"),
    ]
    for rec, detail in cases:
        issue = job_energy_from_record(rec)
        assert isinstance(issue, QualityIssue) and issue.kind == "invalid_job"
        assert detail in issue.detail and issue.subject == f"job alps:7:{int(T.timestamp())}"


def test_lines_keep_end_events_in_the_window_and_report_bad_lines() -> None:
    inside = record().to_json()
    start_event = record(event="start", end_time=None).to_json()
    outside = record(job_id=8, start_time=T.replace(day=1), end_time=T.replace(day=2)).to_json()
    hostile = b'{"job_id": "\'; DROP TABLE fact_job; --"}'
    jobs, issues = job_energies_from_lines(
        [inside, b"", start_event, outside, hostile], (T, T.replace(hour=23))
    )
    assert [j.job_id for j in jobs] == [7]
    (issue,) = issues
    assert issue.kind == "invalid_job" and issue.subject == "line 5"
    assert "job_id" in issue.detail and "DROP TABLE" in issue.detail

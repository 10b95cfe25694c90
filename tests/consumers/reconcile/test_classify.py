"""Classification of a jobcomp record against its slurmdbd row, numbers worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.reconcile.classify import apply, judge, mark
from consumers.reconcile.rules import DbJob
from schemas.fact import Co2eEstimate, Footprint, fact_from_record
from schemas.job import EnergySource, EnergyStatus, JobRecord

SUBMIT = datetime(2026, 11, 21, 10, 8, 53, tzinfo=UTC)
START = datetime(2026, 11, 21, 10, 8, 55, tzinfo=UTC)
END = datetime(2026, 11, 21, 10, 8, 59, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)


def record(**changes: object) -> JobRecord:
    base = JobRecord(
        cluster="c2205",
        job_id=1,
        submit_time=SUBMIT,
        start_time=START,
        end_time=END,
        state="COMPLETED",
        exit_code="0:0",
        derived_exit_code="0:0",
        account="proj1",
        partition="debug",
        user_id=0,
        het_job_id=None,
        job_name="batch_sleep",
        energy_j=408,
        energy_status=EnergyStatus.MEASURED,
        energy_source=EnergySource.TRES_RAW,
    )
    return base.replace(**changes)


def row(**changes: object) -> DbJob:
    # Job 1 as Debian's slurmdbd 22.05 wrote it in the harness (tests/services/slurmdbd.py).
    values: dict[str, object] = dict(
        cluster="c2205",
        job_db_inx=1,
        id_job=1,
        time_submit=int(SUBMIT.timestamp()),
        time_start=int(START.timestamp()),
        time_end=int(END.timestamp()),
        state=3,
        tres_alloc="1=1,3=408,4=1,5=1",
        account="proj1",
        partition="debug",
        id_user=0,
        het_job_offset=4294967294,
        job_name="batch_sleep",
    )
    values.update(changes)
    return DbJob(**values)  # type: ignore[arg-type]


def test_match() -> None:
    verdict = judge(record(), row())
    assert (verdict.status, verdict.energy_j, verdict.differences) == ("match", 408, ())


def test_energy_filled_when_jobcomp_had_none() -> None:
    # Contain setups: the extern step completes after the record; only the DB has energy.
    missing = record(energy_j=None, energy_status=EnergyStatus.MISSING)
    verdict = judge(missing, row())
    assert (verdict.status, verdict.energy_j, verdict.use_db_energy) == ("energy_filled", 408, True)


def test_energy_corrected_names_both_values() -> None:
    verdict = judge(record(energy_j=300), row())
    assert verdict.status == "energy_corrected"
    assert verdict.differences == ("energy_j: jobcomp=300 db=408",)
    assert verdict.energy_j == 408


def test_conflict_names_every_field() -> None:
    verdict = judge(
        record(account="proj2", state="FAILED", exit_code="2:0", partition="other", energy_j=1),
        row(),
    )
    assert verdict.status == "conflict"
    assert verdict.differences == (
        "state: jobcomp=FAILED db=COMPLETED (3)",
        "exit_code: jobcomp=2:0 db=0:0",
        "account: jobcomp=proj2 db=proj1",
        "partition: jobcomp=other db=debug",
        "energy_j: jobcomp=1 db=408",
    )
    assert verdict.energy_j == 408  # same (id_job, time_submit): slurmdbd's energy is final


def test_times_compared_to_the_second() -> None:
    verdict = judge(record(), row(time_end=int(END.timestamp()) + 3600))
    assert verdict.differences == (
        "end_time: jobcomp=2026-11-21T10:08:59Z db=2026-11-21T11:08:59Z",
    )


def test_quirks_are_not_conflicts() -> None:
    # exit 1 -> 256, requeue PENDING <-> 1024, Kafka het 0/0 <-> DB 0/4294967294,
    # <=24.11 partition list, derived_ec raised by a later step.
    rec = record(
        state="PENDING", exit_code="0:1", partition=None, partitions_requested=["debug", "other"]
    )
    verdict = judge(rec, row(state=1024, exit_code=256, partition="other", derived_ec=256))
    assert verdict.status == "match", verdict.differences


def test_both_without_energy_is_a_match() -> None:
    rec = record(energy_j=None, energy_status=EnergyStatus.MISSING)
    verdict = judge(rec, row(tres_alloc="1=1,2=94946,3=18446744073709551614,4=1,5=1"))
    assert (verdict.status, verdict.energy_j, verdict.use_db_energy) == ("match", None, False)


def test_db_without_energy_but_record_with_is_a_conflict() -> None:
    verdict = judge(record(), row(tres_alloc="1=1,3=18446744073709551614"))
    assert verdict.status == "conflict"
    assert verdict.differences == ("energy_j: jobcomp=408 db=missing(18446744073709551614)",)
    assert verdict.energy_j == 408 and not verdict.use_db_energy


def test_invalid_db_energy_is_named() -> None:
    rec = record(energy_j=None, energy_status=EnergyStatus.MISSING)
    verdict = judge(rec, row(tres_alloc="3=2000000000000000000"))
    assert verdict.status == "conflict"
    assert verdict.differences == ("energy_j: jobcomp=missing db=invalid(2000000000000000000)",)


def test_adversarial_values_are_escaped_in_differences() -> None:
    verdict = judge(record(account="x'; DROP TABLE users; --\x00\n" + "A" * 500), row())
    (text,) = verdict.differences
    assert "\x00" not in text and "\n" not in text
    assert text.startswith("account: jobcomp=x'; DROP TABLE users; --\\x00\\n")
    assert len(text) < 200


def test_apply_fills_energy_and_co2e_follows() -> None:
    estimate = Co2eEstimate(
        provider="owid",
        zone="FR",
        signal="average",
        basis="lifecycle",
        factor_g_per_kwh_it=300.0,
        intensity_g_per_kwh=200.0,
        coverage=1.0,
    )
    footprint = Footprint(
        site="default",
        pue_factor=1.5,
        pue_source="static:test",
        pue_coverage=1.0,
        energy_facility_j=None,
        estimates=(estimate,),
    )
    rec = record(energy_j=None, energy_status=EnergyStatus.MISSING)
    fact = fact_from_record(rec)
    fact = type(fact)(record=rec, energy_it_j=None, energy_origin="none", footprint=footprint)
    db = row(tres_alloc="1=1,3=3600000,4=1")  # 3.6 MJ = 1 kWh
    out = apply(fact, judge(rec, db), db, NOW, attempts=2)
    assert out.energy_it_j == 3_600_000 and out.energy_origin == "slurmdbd"
    assert out.footprint is not None
    assert out.footprint.energy_facility_j == pytest.approx(5_400_000.0)  # x PUE 1.5
    assert out.footprint.estimates[0].co2e_g == pytest.approx(300.0)  # 1 kWh x 300 g/kWh
    r = out.reconciliation
    assert (r.status, r.db_energy_j, r.db_job_db_inx, r.db_state, r.attempts) == (
        "energy_filled",
        3_600_000,
        1,
        "COMPLETED",
        2,
    )
    assert r.checked_at == NOW


def test_mark_without_row() -> None:
    fact = mark(fact_from_record(record()), "missing_in_db", NOW, 5, "no row after 600 s")
    assert fact.reconciliation.status == "missing_in_db"
    assert fact.reconciliation.differences == ("no row after 600 s",)
    assert fact.energy_it_j == 408 and fact.energy_origin == "jobcomp"


@pytest.mark.parametrize("state", ["CANCELLED", "TIMEOUT"])
def test_killed_jobs_exit_codes_differ_without_a_conflict(state: str) -> None:
    # Seen on the real 24.11 cluster (tests/cluster): the record is written before the steps
    # end, so jobcomp says 0:15 and slurmdbd 0:0. Listed, marked expected, not a conflict.
    killed = record(
        state=state, exit_code="0:15", energy_j=None, energy_status=EnergyStatus.MISSING
    )
    verdict = judge(killed, row(state={"CANCELLED": 4, "TIMEOUT": 6}[state]))
    assert verdict.status == "energy_filled"
    assert verdict.differences == (
        "exit_code: jobcomp=0:15 db=0:0 (expected: the job ended before its steps)",
    )


def test_exit_code_difference_of_a_completed_job_is_still_a_conflict() -> None:
    verdict = judge(record(exit_code="2:0"), row())
    assert verdict.status == "conflict"
    assert verdict.differences == ("exit_code: jobcomp=2:0 db=0:0",)

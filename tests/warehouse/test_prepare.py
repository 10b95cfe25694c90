"""Pure sink core: validation errors name the job and field; precedence and deduplication."""

from __future__ import annotations

import math

import msgspec
import pytest

from schemas.fact import Co2eEstimate, Footprint, JobFact, Reconciliation, fact_from_record
from tests.warehouse import synthdata
from warehouse.sink.delta import latest_per_key, plan
from warehouse.sink.prepare import (
    FactError,
    account_parent,
    precedence,
    prepare,
    prepare_all,
)

RECORD = synthdata.records(3, seed=40)[0]
LABEL = f"{RECORD.cluster}:{RECORD.job_id}:{RECORD.key.submit_epoch}"


def _fp(**changes: object) -> Footprint:
    estimate = Co2eEstimate(
        provider="p", zone="z", signal="average", basis=None, factor_g_per_kwh_it=300.0,
        intensity_g_per_kwh=250.0, coverage=1.0, co2e_g=10.0,
    )  # fmt: skip
    footprint = Footprint(
        site="s", pue_factor=1.2, pue_source="static", pue_coverage=1.0,
        energy_facility_j=1.0, estimates=(estimate,),
    )  # fmt: skip
    return msgspec.structs.replace(footprint, **changes)


@pytest.mark.parametrize(
    ("fact", "field", "why"),
    [
        (JobFact(record=RECORD, energy_it_j=-5, energy_origin="slurmdbd"), "energy_it_j", "range"),
        (fact_from_record(RECORD.replace(cpus=2**63)), "cpus", "range"),
        (fact_from_record(RECORD.replace(job_db_inx=2**64)), "job_db_inx", "range"),
        (fact_from_record(RECORD.replace(mem_mb=math.nan)), "mem_mb", "range"),
        (fact_from_record(RECORD.replace(nodes="cn[1-2]\x00")), "nodes", "NUL"),
        (fact_from_record(RECORD.replace(user="bad\udcff")), "user", "surrogate"),
        (
            JobFact(
                record=RECORD, energy_it_j=1, energy_origin="jobcomp", footprint=_fp(pue_factor=0.9)
            ),
            "pue_factor",
            "range",
        ),
        (
            JobFact(
                record=RECORD,
                energy_it_j=1,
                energy_origin="jobcomp",
                footprint=_fp(estimates=_fp().estimates * 2),
            ),
            "footprint.estimates",
            "twice",
        ),
        (
            JobFact(record=RECORD, energy_it_j=None, energy_origin="slurmdbd"),
            "energy_origin",
            "missing",
        ),
    ],
)
def test_errors_name_job_and_field(fact: JobFact, field: str, why: str) -> None:
    with pytest.raises(FactError) as info:
        prepare(fact)
    message = str(info.value)
    assert message.startswith(f"job {LABEL}: {field}=") and why in message


def test_run_window_and_key_errors() -> None:
    backwards = RECORD.replace(end_time=RECORD.start_time.replace(year=2000))  # type: ignore[union-attr]
    with pytest.raises(FactError, match=f"job {LABEL}: end_time=.*is before start_time"):
        prepare(fact_from_record(backwards))
    _, rejected, ignored = prepare_all(
        [
            fact_from_record(RECORD.replace(cluster=None)),
            fact_from_record(RECORD.replace(event="start")),
        ]
    )
    assert ignored == 1
    [(job, reason)] = rejected
    assert job == f"?:{RECORD.job_id}:{RECORD.key.submit_epoch}" and "default_cluster" in reason
    assert prepare(fact_from_record(RECORD.replace(cluster=None)), "dflt").key[0] == "dflt"


def test_account_parent_from_lineage() -> None:
    assert account_parent("phys000", "/root/physics/phys000/phys000") == "physics"
    assert account_parent("physics", "/root/physics/") == "root"
    assert account_parent("phys000", "/root/physics/phys000/0-alice/") == "physics"
    assert account_parent("root", "/root/") is None
    assert account_parent("x", None) is None


def test_precedence_orders_final_reconciliation_footprint_then_event() -> None:
    assert precedence("match", False) > precedence("not_checked", True)
    assert precedence("not_checked", True) > precedence("unreconciled", False, "energy_update")
    assert precedence("not_checked", False, "energy_update") > precedence("not_checked", False)


def test_latest_per_key_and_plan() -> None:
    raw = prepare(fact_from_record(RECORD))
    reconciled = prepare(
        msgspec.structs.replace(
            fact_from_record(RECORD), reconciliation=Reconciliation(status="match")
        )
    )
    assert latest_per_key([reconciled, raw]) == [reconciled]
    assert latest_per_key([raw, reconciled]) == [reconciled]
    decided = plan([raw], {raw.key: (1, 2)}, {})
    assert [f for f, _ in decided.inserts] == [raw]
    assert sum(v[0] for v in decided.rollups["rollup_user_day"].values()) == 1


def test_same_fact_same_hash_and_any_change_differs() -> None:
    a = prepare(fact_from_record(RECORD))
    assert prepare(fact_from_record(RECORD)).content_hash == a.content_hash
    assert prepare(fact_from_record(RECORD.replace(job_name="x"))).content_hash != a.content_hash
    literal = prepare(fact_from_record(RECORD.replace(job_name="a\\u0000b")))  # not a NUL
    assert literal.columns["job_name"] == "a\\u0000b"

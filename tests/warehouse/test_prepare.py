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


def _one_at_a_time(facts: list[JobFact]) -> tuple[list[object], list[tuple[str, str]]]:
    prepared: list[object] = []
    rejected: list[tuple[str, str]] = []
    for fact in facts:
        if fact.record.event == "start":
            continue
        try:
            prepared.append(prepare(fact))
        except (ValueError, TypeError, OverflowError) as exc:
            label = f"{fact.record.cluster}:{fact.record.job_id}:{fact.record.key.submit_epoch}"
            rejected.append((label, str(exc) if isinstance(exc, FactError) else repr(exc)))
    return prepared, rejected


def test_prepare_all_screens_columns_and_explains_like_prepare() -> None:
    """The column screen of ``prepare_all`` keeps and refuses exactly what ``prepare`` does,
    with its messages, in input order (range errors in every kind of column, NaN and
    infinities, a text error behind a range error, good facts around them)."""
    good = synthdata.facts(40, seed=41)
    with_estimate = next(f for f in good if f.footprint and f.footprint.estimates)
    bad_estimate = msgspec.structs.replace(
        with_estimate.footprint.estimates[0],  # type: ignore[union-attr]
        co2e_g=math.nan,
    )
    bad = [
        fact_from_record(RECORD.replace(cpus=2**63)),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 1, job_db_inx=2**64)),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 2, mem_mb=math.nan)),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 3, mem_mb=math.inf)),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 4, mem_mb=-1.0)),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 5, cpus=2**63, nodes="a\x00")),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 6, user="bad\udcff")),
        msgspec.structs.replace(
            with_estimate,
            footprint=msgspec.structs.replace(
                with_estimate.footprint,  # type: ignore[arg-type]
                estimates=(bad_estimate,),
            ),
        ),
        fact_from_record(RECORD.replace(job_id=RECORD.job_id + 7, event="start")),
    ]
    mixed = [*good[:15], *bad[:4], *good[15:30], *bad[4:], *good[30:]]
    for batch in (mixed, good, bad):
        want_prepared, want_rejected = _one_at_a_time(batch)
        got_prepared, got_rejected, ignored = prepare_all(batch)
        assert got_prepared == want_prepared
        assert [(j, r) for j, r in got_rejected] == want_rejected
        assert ignored == sum(f.record.event == "start" for f in batch)
    _, rejected, _ = prepare_all(mixed)
    assert len(rejected) == 8
    assert "cpus=" in rejected[0][1] and "cpus=" in rejected[5][1]  # range before the NUL
    assert "co2e_g=nan" in rejected[7][1]

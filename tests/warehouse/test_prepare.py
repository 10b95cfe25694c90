"""Pure sink core: validation errors name the job and field; precedence and deduplication;
the columnar core (``batch.build``) keeps, refuses and hashes exactly what ``prepare`` does."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from schemas.fact import Co2eEstimate, Footprint, JobFact, Reconciliation, fact_from_record
from tests.warehouse import synthdata
from warehouse.sink.batch import DIM_COLUMNS, FactBatch, build, build_all, latest_per_key
from warehouse.sink.prepare import (
    CO2E_FIELDS,
    FACT_COLUMNS,
    FactError,
    PreparedFact,
    account_parent,
    precedence,
    prepare,
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
    built = build(
        [
            fact_from_record(RECORD.replace(cluster=None)),
            fact_from_record(RECORD.replace(event="start")),
        ]
    )
    assert built.ignored == 1 and len(built.batch) == 0
    [(position, job, reason)] = built.rejected
    assert position == 0
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


def test_latest_per_key_keeps_the_highest_precedence_then_the_last() -> None:
    raw = fact_from_record(RECORD)
    reconciled = msgspec.structs.replace(raw, reconciliation=Reconciliation(status="match"))
    other = fact_from_record(RECORD.replace(job_id=RECORD.job_id + 1))
    renamed = fact_from_record(RECORD.replace(job_name="later"))
    for batch, winner in (
        ([reconciled, raw, other], reconciled),
        ([raw, reconciled, other], reconciled),
        ([raw, other, renamed], renamed),  # equal precedence: the last one
    ):
        best = latest_per_key(build(batch).batch)
        assert len(best) == 2
        assert best.keys[0] == prepare(raw).key  # first-seen key order
        assert best.content_hash[0] == prepare(winner).content_hash
        assert best.content_hash[1] == prepare(other).content_hash


def test_same_fact_same_hash_and_any_change_differs() -> None:
    a = prepare(fact_from_record(RECORD))
    assert prepare(fact_from_record(RECORD)).content_hash == a.content_hash
    assert prepare(fact_from_record(RECORD.replace(job_name="x"))).content_hash != a.content_hash
    literal = prepare(fact_from_record(RECORD.replace(job_name="a\\u0000b")))  # not a NUL
    assert literal.columns["job_name"] == "a\\u0000b"


def _one_at_a_time(facts: list[JobFact]) -> tuple[list[PreparedFact], list[tuple[str, str]]]:
    prepared: list[PreparedFact] = []
    rejected: list[tuple[str, str]] = []
    for fact in facts:
        if fact.record.event == "start":
            continue
        try:
            prepared.append(prepare(fact))
        except (ValueError, TypeError, OverflowError) as exc:
            cluster, job_id, epoch = fact.record.key
            label = f"{cluster or '?'}:{job_id}:{'?' if epoch is None else epoch}"
            reason = str(exc) if isinstance(exc, FactError) else f"job {label}: {exc!r}"
            rejected.append((label, reason))
    return prepared, rejected


def _as_prepared(batch: FactBatch) -> list[PreparedFact]:
    """The rows of a batch in ``prepare``'s form (to compare them field by field)."""
    estimates: list[list[dict[str, object]]] = [[] for _ in range(len(batch))]
    for row, estimate in batch.estimates():
        estimates[row].append(estimate)
    out = []
    for i, columns in enumerate(batch.rows()):
        out.append(
            PreparedFact(
                key=batch.keys[i],
                dims=prepare_dims(batch, i),
                columns=columns,
                co2e=tuple(estimates[i]),
                content_hash=batch.content_hash[i],
                precedence=int(batch.precedence[i]),
            )
        )
    return out


def prepare_dims(batch: FactBatch, row: int) -> object:
    from warehouse.sink.prepare import Dims

    return Dims(**{c: batch.values[c][row] for c in DIM_COLUMNS})


def _assert_like_prepare(batch_facts: list[JobFact]) -> list[tuple[int, str, str]]:
    want_prepared, want_rejected = _one_at_a_time(batch_facts)
    built = build(batch_facts)
    got = _as_prepared(built.batch)
    assert [list(p.columns) for p in got[:1]] in ([], [list(FACT_COLUMNS)])
    assert got == want_prepared
    assert [(j, r) for _, j, r in built.rejected] == want_rejected
    assert built.ignored == sum(f.record.event == "start" for f in batch_facts)
    assert [p for p, _, _ in built.rejected] == sorted(p for p, _, _ in built.rejected)
    return built.rejected


def test_build_screens_columns_and_explains_like_prepare() -> None:
    """The columnar ``build`` keeps and refuses exactly what ``prepare`` does, with its
    messages, in input order (range errors in every kind of column, NaN and infinities, a
    text error behind a range error, good facts around them)."""
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
        _assert_like_prepare(batch)
    rejected = _assert_like_prepare(mixed)
    assert len(rejected) == 8
    assert "cpus=" in rejected[0][2] and "cpus=" in rejected[5][2]  # range before the NUL
    assert "co2e_g=nan" in rejected[7][2]


def test_build_equals_prepare_on_a_workload() -> None:
    """Every column, dimension, CO2e row, hash and precedence of 3000 synthetic facts."""
    facts = synthdata.facts(3000, seed=43)
    _assert_like_prepare(facts)
    # In chunks (as the sink builds large inputs) the rows and positions are the same.
    whole, chunked = build(facts).batch, build_all(facts, chunk=700).batch
    assert _as_prepared(chunked) == _as_prepared(whole)
    assert chunked.position.tolist() == list(range(len(facts)))
    assert chunked.estimates() == whole.estimates()


_MUTATIONS: list[tuple[str, object]] = [
    ("cpus", -1), ("cpus", 2**63), ("gpus", 2**64), ("job_db_inx", -1),
    ("job_db_inx", 2**64 - 1), ("mem_mb", math.nan), ("mem_mb", -math.inf), ("mem_mb", 1e308),
    ("record_version", 2**31), ("elapsed_s", -5), ("billing", -(2**63)), ("node_count", 2**40),
    ("job_name", "x\x00y"), ("nodes", "\udc80"), ("account", "acct\x00"), ("qos", "\ud800"),
    ("partition", ""), ("user", None), ("cluster", None), ("submit_time", None),
    ("cpus", "many"), ("mem_mb", "lots"), ("job_name", 42), ("exclusive", True),
    ("end_time", datetime(2024, 3, 5, 12, 0, 0, 250_000)),  # naive: prepare's local time
    ("start_time", datetime(2024, 3, 5, 1, 2, 3, tzinfo=timezone(timedelta(hours=2)))),
    ("start_time", datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)),
]  # fmt: skip


def test_build_agrees_with_prepare_on_random_mutations() -> None:
    """Random good and broken facts in random batches: the same facts kept, the same
    refusals with the same messages (or, for a value of the wrong type that ``prepare``
    would let through, a refusal that names the field)."""
    rng = random.Random(17)
    base = synthdata.facts(300, seed=44)
    for _round in range(30):
        batch = []
        for fact in rng.sample(base, 40):
            if rng.random() < 0.3:
                name, value = rng.choice(_MUTATIONS)
                fact = msgspec.structs.replace(fact, record=fact.record.replace(**{name: value}))
            if rng.random() < 0.05:
                fact = msgspec.structs.replace(fact, energy_it_j=-1)
            batch.append(fact)
        want_prepared, want_rejected = _one_at_a_time(batch)
        built = build(batch)
        got_rejected = [(j, r) for _, j, r in built.rejected]
        typed = [(j, r) for j, r in got_rejected if (j, r) not in want_rejected]
        assert [x for x in got_rejected if x not in typed] == want_rejected
        for job, reason in typed:  # only wrong-type values prepare would not catch
            assert reason.startswith(f"job {job}: job_name=42 ")
        accepted = {p.key: p for p in want_prepared}
        for p in _as_prepared(built.batch):
            assert accepted.pop(p.key) == p
        assert {key_label_of(k) for k in accepted} == {j for j, _ in typed}


def key_label_of(key: tuple[object, object, object]) -> str:
    return ":".join(str(part) for part in key)


def test_estimate_columns_are_in_the_fields_order() -> None:
    fact = next(f for f in synthdata.facts(20, seed=45) if f.footprint)
    assert list(prepare(fact).co2e[0]) == list(CO2E_FIELDS)
    assert list(prepare(fact).columns) == list(FACT_COLUMNS)

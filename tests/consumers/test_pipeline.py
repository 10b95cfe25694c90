"""The pure pipeline: ingest -> fact -> enrich -> reconcile, and its stage seams."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from consumers import pipeline
from consumers.ingest import Rejection
from consumers.state import EnrichmentState
from jobcarbon.synth import generate_jobs, render
from schemas.fact import JobFact, Reconciliation

STATE = EnrichmentState()


def raw(seed: int = 3, version: str = "24.11") -> bytes:
    return render(generate_jobs(1, seed)[0], version)


def test_good_record_becomes_a_fact_with_provenance_saying_not_enriched_not_checked() -> None:
    value = raw()
    fact = pipeline.process(value, STATE)
    assert isinstance(fact, JobFact)
    assert fact.footprint is None
    assert fact.reconciliation.status == "not_checked"
    job = generate_jobs(1, 3)[0]
    assert fact.record.job_id == job.job_id
    assert fact.energy_it_j == (job.energy_record_j if fact.energy_origin == "jobcomp" else None)


def test_bad_bytes_become_a_rejection_with_the_original_bytes() -> None:
    result = pipeline.process(b'{"jobid": ', STATE)
    assert isinstance(result, Rejection)
    assert result.reason == "invalid_json"
    assert result.raw == b'{"jobid": '


def test_stage_seams_take_other_functions() -> None:
    def enrich(fact: JobFact, state: EnrichmentState) -> JobFact:
        return msgspec.structs.replace(fact, shared_node=True)

    def reconcile(fact: JobFact) -> JobFact:
        return msgspec.structs.replace(fact, reconciliation=Reconciliation(status="match"))

    fact = pipeline.process(raw(), STATE, stages=pipeline.Stages(enrich, reconcile))
    assert isinstance(fact, JobFact)
    assert fact.shared_node is True and fact.reconciliation.status == "match"


def test_a_failing_enrich_stage_dead_letters_the_record_with_its_reason() -> None:
    def enrich(fact: JobFact, state: EnrichmentState) -> JobFact:
        raise pipeline.StageError("field 'cluster' has value 'x': no zone configured")

    result = pipeline.process(raw(), STATE, stages=pipeline.Stages(enrich=enrich))
    assert isinstance(result, Rejection)
    assert result.reason == pipeline.ENRICH_FAILED
    assert "no zone configured" in result.detail
    assert b'"job_id"' in result.raw  # the normalized record, for a human to replay


def test_a_failing_reconcile_stage_dead_letters_too() -> None:
    def reconcile(fact: JobFact) -> JobFact:
        raise ValueError("slurmdbd row has account NULL")

    result = pipeline.process(raw(), STATE, stages=pipeline.Stages(reconcile=reconcile))
    assert isinstance(result, Rejection) and result.reason == pipeline.RECONCILE_FAILED


def test_split_keeps_input_order() -> None:
    results = [pipeline.process(v, STATE) for v in (raw(1), b"", raw(2), b"[]")]
    facts, rejections = pipeline.split(results)
    assert [f.record.job_id for f in facts] == [generate_jobs(1, s)[0].job_id for s in (1, 2)]
    assert [r.reason for r in rejections] == ["empty", "not_an_object"]


def test_an_unexpected_exception_in_a_stage_is_dead_lettered_not_raised() -> None:
    def enrich(fact: JobFact, state: EnrichmentState) -> JobFact:
        raise KeyError("zone")  # a bug in a stage must not crash the worker and lose a batch

    result = pipeline.process(raw(), STATE, stages=pipeline.Stages(enrich=enrich))
    assert isinstance(result, Rejection)
    assert result.reason == pipeline.ENRICH_FAILED and "KeyError" in result.detail


def test_the_wired_enrich_stage_gives_a_footprint_from_local_state() -> None:
    from datetime import UTC, datetime

    from jobcarbon.settings import Settings

    clock = datetime(2026, 1, 1, tzinfo=UTC)
    stages = pipeline.stages_for(Settings(), clock=lambda: clock)
    fact = pipeline.process(raw(), STATE, stages=stages)
    assert isinstance(fact, JobFact) and fact.footprint is not None
    assert fact.footprint.computed_at == clock
    assert fact.reconciliation.status == "not_checked"


def test_ingest_dead_letters_records_over_the_configured_size_with_their_bytes() -> None:
    value = render(generate_jobs(1, 9)[0], "24.11")
    assert not isinstance(pipeline.ingest(value, max_bytes=len(value)), Rejection)
    over = pipeline.ingest(value, max_bytes=len(value) - 1)
    assert isinstance(over, Rejection)
    assert (over.reason, over.raw) == ("oversized", value)
    assert f"{len(value)} bytes, over the {len(value) - 1} limit" in over.detail


def test_process_batch_gives_what_process_gives_record_by_record_with_indexes() -> None:
    def enrich(fact: JobFact, state: EnrichmentState) -> JobFact:
        if fact.record.job_id % 5 == 0:
            raise ValueError(f"job_id {fact.record.job_id}: no zone")
        return msgspec.structs.replace(fact, shared_node=True)

    stages = pipeline.Stages(enrich=enrich)
    values = [render(job, "24.11") for job in generate_jobs(40, 21)]
    values[3:3] = [b"", b"{not json", b"\xff"]
    result = pipeline.process_batch(((v, None, None) for v in values), STATE, stages)

    one_by_one = [pipeline.process(v, STATE, stages=stages) for v in values]
    assert [i for i, _ in result.facts] == [
        i for i, r in enumerate(one_by_one) if isinstance(r, JobFact)
    ]
    assert [f for _, f in result.facts] == [r for r in one_by_one if isinstance(r, JobFact)]
    assert [(i, r) for i, _stage, r in result.rejected] == [
        (i, r) for i, r in enumerate(one_by_one) if isinstance(r, Rejection)
    ]
    stage_of = {i: stage for i, stage, _ in result.rejected}
    assert [stage_of[i] for i in (3, 4, 5)] == ["ingest"] * 3
    assert {stage_of[i] for i in stage_of if i not in (3, 4, 5)} == {"sink"}
    assert {r.reason for _, s, r in result.rejected if s == "sink"} == {pipeline.ENRICH_FAILED}
    # Normalized records: every one that passed ingest, enrich failures included.
    assert len(result.records) == len(values) - 3


def test_process_batch_with_batch_forms_gives_what_the_per_record_forms_give() -> None:
    from datetime import UTC, datetime

    from jobcarbon.settings import Settings

    clock = datetime(2026, 1, 1, tzinfo=UTC)
    wired = pipeline.stages_for(Settings(), clock=lambda: clock)
    assert wired.enrich_many is not None and wired.reconcile_many is not None
    per_record = pipeline.Stages(wired.enrich, wired.reconcile)
    values = [render(job, "24.11") for job in generate_jobs(60, 8)]
    values[10:10] = [b"", b"{not json"]
    items = [(v, None, None) for v in values]
    batched = pipeline.process_batch(items, STATE, wired)
    one_by_one = pipeline.process_batch(items, STATE, per_record)
    assert batched.facts == one_by_one.facts and len(batched.facts) > 50
    assert batched.rejected == one_by_one.rejected
    assert all(f.footprint is not None for _, f in batched.facts if f.record.start_time)


def test_a_batch_form_failing_for_the_batch_runs_again_fact_by_fact() -> None:
    def enrich(fact: JobFact, state: EnrichmentState) -> JobFact:
        if fact.record.job_id % 3 == 0:
            raise ValueError(f"job_id {fact.record.job_id}: bad")
        return msgspec.structs.replace(fact, shared_node=True)

    def enrich_many(facts: Sequence[JobFact], state: EnrichmentState) -> list[JobFact]:
        return [enrich(f, state) for f in facts]  # raises for the whole batch

    def reconcile_many(facts: Sequence[JobFact]) -> list[JobFact | Exception]:
        return [ValueError("no row") if f.record.job_id % 5 == 0 else f for f in facts]

    stages = pipeline.Stages(enrich, enrich_many=enrich_many, reconcile_many=reconcile_many)
    values = [render(job, "24.11") for job in generate_jobs(30, 4)]
    values[2:2] = [b"[]"]
    result = pipeline.process_batch(((v, None, None) for v in values), STATE, stages)
    jobs = {i: f.record.job_id for i, f in result.facts}
    assert all(j % 3 and j % 5 for j in jobs.values()) and jobs
    assert all(f.shared_node for _, f in result.facts)
    reasons = [(i, s, r.reason) for i, s, r in result.rejected]
    assert [i for i, _, _ in reasons] == sorted(i for i, _, _ in reasons)  # input order
    assert (2, "ingest", "not_an_object") in reasons
    assert {r for _, s, r in reasons if s == "sink"} == {
        pipeline.ENRICH_FAILED,
        pipeline.RECONCILE_FAILED,
    }
    assert len(result.facts) + len(result.rejected) == len(values)

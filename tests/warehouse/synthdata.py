"""Synthetic facts for warehouse tests: jobcomp records from ``jobcarbon.synth`` through the
real normalizer, with a deterministic footprint and reconciliation on some of them."""

from __future__ import annotations

import msgspec

from consumers.ingest import normalize_bytes
from jobcarbon.synth import choose_versions, generate_jobs, render
from schemas.fact import (
    J_PER_KWH,
    Co2eEstimate,
    Footprint,
    JobFact,
    Reconciliation,
    fact_from_record,
    with_energy,
)
from schemas.job import JobRecord


def records(n: int, seed: int = 7, version: str = "mix") -> list[JobRecord]:
    """``n`` normalized records (finish events) of a seeded synthetic workload."""
    jobs = generate_jobs(n, seed)
    out = []
    for job, v in zip(jobs, choose_versions(len(jobs), version, seed), strict=True):
        record = normalize_bytes(render(job, v))
        assert isinstance(record, JobRecord), record
        out.append(record)
    return out


def footprint(record: JobRecord, energy_it_j: int | None) -> Footprint:
    """A footprint with two estimates (average and marginal) that depends on the job id."""
    pue = 1.1 + (record.job_id % 5) / 10
    intensity = 100.0 + record.job_id % 400
    kwh = None if energy_it_j is None else energy_it_j / J_PER_KWH
    estimates = tuple(
        Co2eEstimate(
            provider=provider,
            zone="CH",
            signal=signal,  # type: ignore[arg-type]
            basis="lifecycle",
            factor_g_per_kwh_it=pue * intensity * scale,
            intensity_g_per_kwh=intensity * scale,
            coverage=1.0,
            co2e_g=None if kwh is None else kwh * pue * intensity * scale,
        )
        for provider, signal, scale in (
            ("electricitymaps", "average", 1.0),
            ("watttime", "marginal", 1.5),
        )
    )
    return Footprint(
        site="lugano",
        pue_factor=pue,
        pue_source="static:test",
        pue_coverage=1.0,
        energy_facility_j=None if energy_it_j is None else energy_it_j * pue,
        estimates=estimates,
        cost=None if kwh is None else kwh * 0.2,
        currency="CHF",
    )


def enriched(record: JobRecord) -> JobFact:
    """The fact as enrich + reconcile would make it: a footprint on most jobs; slurmdbd
    fills the energy of some jobs without it."""
    fact = fact_from_record(record)
    if record.job_id % 7 == 0:
        return fact  # not enriched (e.g. no intensity yet)
    fact = msgspec.structs.replace(fact, footprint=footprint(record, fact.energy_it_j))
    if fact.energy_it_j is None and record.job_id % 3 == 0 and record.elapsed_s:
        filled = with_energy(fact, 250 * record.elapsed_s, "slurmdbd")
        return msgspec.structs.replace(
            filled,
            reconciliation=Reconciliation(
                status="energy_filled", db_energy_j=250 * record.elapsed_s
            ),
        )
    return fact


def facts(n: int, seed: int = 7) -> list[JobFact]:
    """``n`` enriched facts of a synthetic workload."""
    return [enriched(r) for r in records(n, seed)]

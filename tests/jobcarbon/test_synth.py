"""The synthetic workload is deterministic, realistic, and renders every documented layout."""

import itertools
import json
from collections import Counter

from consumers.ingest import normalize_bytes
from jobcarbon.synth import (
    VERSIONS,
    choose_versions,
    generate_jobs,
    print_sluid,
    record_dict,
    render,
)
from schemas.hostlist import expand_hostlist
from schemas.job import EnergyStatus, JobRecord


def test_deterministic_for_a_seed() -> None:
    a = [render(j, "24.11") for j in generate_jobs(300, seed=5)]
    b = [render(j, "24.11") for j in generate_jobs(300, seed=5)]
    c = [render(j, "24.11") for j in generate_jobs(300, seed=6)]
    assert a == b and a != c


def test_print_sluid_matches_the_real_25_05_dump() -> None:
    # job_db_inx 13449544672876986368 from the SlurmCostManager dump is sBN9K1KW4S9000.
    assert print_sluid(13449544672876986368) == "sBN9K1KW4S9000"


def test_mix_of_states_partitions_arrays_het_and_energy_quirks() -> None:
    jobs = generate_jobs(4000, seed=1)
    states = Counter(j.state for j in jobs)
    assert {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY"} <= set(states)
    assert {j.partition for j in jobs} == {"cpu", "gpu", "bigmem", "shared"}
    assert any(j.array_job_id for j in jobs) and any(j.het_job_id for j in jobs)
    tags = Counter(t for j in jobs for t in j.tags)
    assert tags["energy_late"] and tags["energy_unmeasured"] and tags["energy_bogus"]
    assert tags["shared_node"] and tags["pending_cancel"]
    users = Counter(j.user.name for j in jobs)
    top = users.most_common(1)[0][1]
    assert top > 10 * (len(jobs) / len(users))  # skewed activity


def test_exclusive_jobs_never_overlap_on_a_node() -> None:
    busy: dict[str, list[tuple[float, float]]] = {}
    for job in generate_jobs(3000, seed=2):
        if job.exclusive and job.start is not None:
            for node in job.nodes:
                busy.setdefault(node, []).append((job.start.timestamp(), job.end.timestamp()))
    for spans in busy.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end


def test_energy_truth_is_power_times_nodes_times_time() -> None:
    for job in generate_jobs(500, seed=3):
        if job.energy_db_j is not None and job.energy_db_j < 10**18 and job.elapsed_s >= 2:
            assert abs(job.energy_db_j - job.energy_true_j) <= 1


def test_every_version_renders_and_normalizes_to_the_truth() -> None:
    jobs = generate_jobs(400, seed=4)
    for version in VERSIONS:
        for job in jobs:
            record = normalize_bytes(render(job, version))
            assert isinstance(record, JobRecord), (version, record)
            assert record.job_id == job.job_id
            assert expand_hostlist(record.nodes) == list(job.nodes)
            if record.energy_status is EnergyStatus.MEASURED:
                assert record.energy_j == job.energy_record_j


def test_layout_quirks_per_version() -> None:
    job = next(j for j in generate_jobs(200, seed=9) if j.start and j.nodes)
    assert render(job, "23.02").endswith(b"\x00")
    assert not render(job, "24.11").endswith(b"\x00")
    assert b"\\/" in render(job, "24.11")
    assert "tres_alloc_str" in record_dict(job, "23.11.0-cscs")
    assert "tres_alloc_raw" not in record_dict(job, "23.02")
    assert "priority" in record_dict(job, "24.05") and "priority" not in record_dict(
        job, "23.11.10"
    )
    assert "script" not in record_dict(job, "25.05") and "script" in record_dict(job, "24.11")
    assert record_dict(job, "26.05")["sluid"].startswith("s")
    patched = record_dict(job, "24.11-patched")
    assert {"energy_j", "energy_complete", "job_db_inx", "submit_epoch"} <= set(patched)
    start = json.loads(render(job, "25.05", event="start"))
    assert start["state"] is None and "@end" not in start


def test_mix_draws_every_version() -> None:
    assert set(choose_versions(2000, "mix", 1)) == set(VERSIONS)

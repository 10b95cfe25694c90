"""Synthetic sacct --json reads back through the real sacct parser with slurmdbd's energies."""

from consumers.reconcile.sacct import parse_sacct_json
from jobcarbon.synth import generate_jobs
from jobcarbon.synth.sacct import sacct_json


def test_every_job_reads_back_with_its_final_energy() -> None:
    jobs = generate_jobs(400, seed=7)
    parsed = parse_sacct_json(sacct_json(jobs))
    assert parsed.errors == [] and parsed.parser == "data_parser/v0.0.41"
    by_id = {job.id_job: job for job in parsed.jobs}
    assert set(by_id) == {job.job_id for job in jobs}
    for job in jobs:
        usable = job.energy_db_j is not None and job.energy_db_j < 10**18
        assert by_id[job.job_id].energy.joules == (job.energy_db_j if usable else None)
        assert by_id[job.job_id].time_submit == int(job.submit.timestamp())

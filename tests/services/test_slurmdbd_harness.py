"""Debian's real slurmdbd 22.05 wrote the schema; real jobs wrote their rows."""

from __future__ import annotations

import pytest

from tests.services.slurmdbd import Slurm2205, SlurmJobs

pytestmark = [pytest.mark.mariadb, pytest.mark.slurmdbd]


def test_slurmdbd_created_the_cluster_tables(slurm2205: Slurm2205) -> None:
    conn = slurm2205.db.root()
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM cluster_table WHERE deleted = 0")
        assert ("c2205",) in cur.fetchall()
        cur.execute("SHOW TABLES LIKE 'c2205\\_%'")
        tables = {row[0] for row in cur.fetchall()}
    conn.close()
    assert {"c2205_job_table", "c2205_step_table", "c2205_assoc_table"} <= tables


def test_real_jobs_reached_the_database(slurm2205_jobs: SlurmJobs) -> None:
    out = slurm2205_jobs.stack.run(
        "sacct",
        "-n",
        "-P",
        "-a",
        "-X",
        "-o",
        "JobName,State,ExitCode,ConsumedEnergyRaw",
        "-j",
        ",".join(str(i) for i in slurm2205_jobs.ids.values()),
    )
    rows = [line.split("|") for line in out.splitlines()]
    states = {(name, state, ec) for name, state, ec, _ in rows}
    assert states == {
        ("batch_sleep", "COMPLETED", "0:0"),
        ("srun_step", "COMPLETED", "0:0"),
        ("exit_one", "FAILED", "1:0"),
        ("array", "COMPLETED", "0:0"),
    }
    assert len(rows) == 5  # the array has two tasks
    # Fake pm_counters at 100 W: every job ran >= 2 s, so it has >= 100 J of real energy.
    assert all(int(energy) >= 100 for *_, energy in rows)
    assert slurm2205_jobs.seconds < 120

"""Stop MariaDB (slurmdbd's database, reconciliation wired via ``accounting.url``) mid-stream:
records keep landing, as ``unreconciled``; once MariaDB is back a ``jobcarbon reconcile``
sweep settles them, and the warehouse equals the source with the database up all along."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcarbon.settings import AccountingSettings, KafkaSettings, Settings
from jobcarbon.synth import SynthJob, generate_jobs
from tests.consumers.stream.harness import (
    REPO,
    PacedProducer,
    Worker,
    fact_count,
    migrated_sqlite,
    wait_for,
)
from tests.faults.stack import (
    SCALES,
    Scale,
    assert_dlq_exact,
    assert_warehouse_exact,
    fault_stream,
    unsettled,
    worker_env,
)
from tests.services.mariadb import AccountingDB, MariaDB
from warehouse.engine import make_engine

pytestmark = [
    pytest.mark.fault,
    pytest.mark.broker,
    pytest.mark.mariadb,
    pytest.mark.timeout(7200),
]

SEED = 404
CLUSTER = "localcluster"  # the cluster of the real 25.05 slurmdbd dump
#: Slurm's numeric job states (slurm.h ``enum job_states``) for the synthetic jobs' rows.
STATES = {"PENDING": 0, "RUNNING": 1, "COMPLETED": 3, "CANCELLED": 4, "FAILED": 5,
          "TIMEOUT": 6, "NODE_FAIL": 7, "PREEMPTED": 8, "OUT_OF_MEMORY": 11}  # fmt: skip


@pytest.fixture
def accounting(shared_data: Path) -> Iterator[tuple[MariaDB, AccountingDB]]:
    """A MariaDB of this test's own (the test stops it) with the real 25.05 dump."""
    base = Path(tempfile.mkdtemp(prefix="jobcarbon-mariadb-fault-"))
    server = MariaDB(base)
    try:
        server.install()
        server.start()
        server.load_sql("acct", shared_data / "slurm" / "slurmdbd_25.05_example_dump.sql")
        password = server.add_reader("acct", "reader")
        yield server, AccountingDB(server, "acct", CLUSTER, "reader", password)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def add_jobs(db: AccountingDB, jobs: list[SynthJob]) -> None:
    """Rows for ``jobs`` in the dump's job table, cloned from one of its real rows (so every
    column slurmdbd writes has a plausible value) with the job's own identity and times."""
    conn = db.root()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {CLUSTER}_job_table WHERE id_job = 10")
            names = [d[0] for d in cur.description]
            template = dict(zip(names, cur.fetchone(), strict=True))
            rows = []
            for job in jobs:
                row = dict(
                    template,
                    job_db_inx=job.db_index,
                    id_job=job.job_id,
                    id_array_job=job.array_job_id or 0,
                    id_array_task=4294967294 if job.array_task_id is None else job.array_task_id,
                    het_job_id=job.het_job_id or 0,
                    het_job_offset=4294967294 if job.het_job_offset is None else job.het_job_offset,
                    time_submit=int(job.submit.timestamp()),
                    time_eligible=int(job.eligible.timestamp()),
                    time_start=int(job.start.timestamp()) if job.start else 0,
                    time_end=int(job.end.timestamp()),
                    state=STATES.get(job.state, template["state"]),
                    account=job.account,
                    partition=job.partition,
                    job_name=job.job_name,
                )
                rows.append(tuple(row[n] for n in names))
            columns = ", ".join(f"`{n}`" for n in names)
            marks = ", ".join(["%s"] * len(names))
            cur.executemany(
                f"INSERT INTO {CLUSTER}_job_table ({columns}) VALUES ({marks})", rows
            )  # names come from the table itself; values are bound
    finally:
        conn.close()


@pytest.mark.parametrize("scale", SCALES)
def test_accounting_down_mid_stream_lands_unreconciled_then_the_sweep_settles_them(
    scale: Scale,
    kafka: KafkaSettings,
    kafka_env: dict[str, str],
    workers: list[Worker],
    tmp_path: Path,
    accounting: tuple[MariaDB, AccountingDB],
) -> None:
    server, db = accounting
    jobs = generate_jobs(scale.records, SEED, cluster=CLUSTER)  # the stream's own jobs
    add_jobs(db, [job for i, job in enumerate(jobs) if i % 10])  # every tenth never made it
    settings = Settings(accounting=AccountingSettings(url=db.url, timeout_s=2))
    stream = fault_stream(scale, SEED, tmp_path, cluster=CLUSTER, settings=settings)
    n_expected = stream.n_expected
    assert unsettled(stream.expected) == 0  # with the database up every job gets a verdict

    paced = PacedProducer(kafka, stream.messages, scale.produce_s)
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    env = {
        **worker_env(kafka_env),
        "JOBCARBON_ACCOUNTING__URL": db.url,
        "JOBCARBON_ACCOUNTING__TIMEOUT_S": "2",
    }
    workers += [Worker(env, url, tmp_path, f"w{i}") for i in range(2)]
    wait_for(lambda: fact_count(engine) >= n_expected // 5, scale.timeout_s, "the first facts")
    server.stop()  # slurmdbd's database goes away mid-stream
    try:
        wait_for(lambda: fact_count(engine) >= n_expected, scale.timeout_s, "all facts")
        held = unsettled(engine)
    finally:
        paced.result()
        server.start()  # same port and data
    assert held > 0, "no record met the outage; raise the volume"

    sweep = subprocess.run(
        [sys.executable, "-m", "jobcarbon", "reconcile", "--since", "2000-01-01",
         "--db", url, "--accounting", db.url],
        cwd=REPO, capture_output=True, text=True, timeout=scale.timeout_s, check=False,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert unsettled(engine) == 0
    assert_warehouse_exact(engine, stream.expected)
    assert_same_statuses(engine, stream.expected)
    assert_dlq_exact(kafka, stream.bad, redelivered=False)


def assert_same_statuses(engine: object, expected: object) -> None:
    """Per reconciliation status, the same number of facts as with the database up."""
    from sqlalchemy import Engine, text

    assert isinstance(engine, Engine) and isinstance(expected, Engine)
    sql = text("SELECT reconcile_status, count(*) FROM fact_job GROUP BY 1 ORDER BY 1")
    with engine.connect() as a, expected.connect() as b:
        assert a.execute(sql).all() == b.execute(sql).all()

"""bench/reconcile: reconcile 100k jobs against slurmdbd with batched lookups vs one query per
job (the baseline), both in the same run against the same MariaDB.

A private MariaDB is started (as the tests do), the real Slurm 25.05 slurmdbd dump gives the
table definitions, and ``--jobs`` synthetic jobs (``jobcarbon.synth``: ids, submit times,
SLUIDs, final slurmdbd energy) are inserted into ``bench_job_table`` with one extern step each.
The records reconciled are the synthetic jobs rendered as jobcomp records (mixed Slurm
layouts) and normalized. Run: ``python -m bench.reconcile [--jobs N] [--per-job N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from consumers.ingest import normalize_bytes
from consumers.reconcile.accounting import SlurmdbdSource
from consumers.reconcile.rules import NO_VAL, STEP_EXTERN, state_code
from consumers.reconcile.stage import ReconcileStage, decide
from jobcarbon.synth import SynthJob, choose_versions, generate_jobs, render
from schemas.fact import JobFact, fact_from_record
from schemas.job import JobRecord
from schemas.tres import NO_VAL64
from tests.services.mariadb import MariaDB

CLUSTER = "bench"
BATCH = 1000
_REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("JOBCARBON_SHARED", _REPO.parent / "shared"))


def _raw_exit(text: str) -> int:
    code, _, sig = text.partition(":")
    return int(sig) & 0x7F if int(sig) else (int(code) & 0xFF) << 8


def _job_row(j: SynthJob, assoc: dict[str, int], qos: dict[str, int]) -> tuple[object, ...]:
    energy = NO_VAL64 if j.energy_db_j is None else j.energy_db_j
    tres = f"1={j.cpus},2={j.mem_mb},3={energy},4={len(j.nodes)},5={j.cpus}"
    state = state_code("CANCELLED" if j.state.startswith("CANCELLED") else j.state)
    return (
        j.db_index, j.job_id, assoc[j.user.name], state, int(j.submit.timestamp()),
        int(j.eligible.timestamp()), int(j.start.timestamp()) if j.start else 0,
        int(j.end.timestamp()), tres, j.cpus, j.job_name, 0, 0, j.user.uid, j.user.gid,
        j.het_job_id or 0, NO_VAL if j.het_job_offset is None else j.het_job_offset, 0,
        len(j.nodes), j.partition, 1, j.account, j.array_job_id or 0,
        NO_VAL if j.array_task_id is None else j.array_task_id, _raw_exit(j.exit_code),
        qos[j.qos], _raw_exit(j.derived_ec),
    )  # fmt: skip


def _lineage(parent_accounts: str, user: str) -> str:
    """``/root/dept/proj/proj`` -> slurmdbd's ``/dept/proj/0-user/``."""
    parts = [p for p in parent_accounts.split("/") if p and p != "root"]
    while len(parts) > 1 and parts[-1] == parts[-2]:
        parts.pop()
    return "/" + "/".join([*parts, f"0-{user}"]) + "/"


_JOB_COLUMNS = (
    "job_db_inx, id_job, id_assoc, state, time_submit, time_eligible, time_start, time_end, "
    "tres_alloc, cpus_req, job_name, id_resv, id_wckey, id_user, id_group, het_job_id, "
    "het_job_offset, state_reason_prev, nodes_alloc, `partition`, priority, account, "
    "id_array_job, id_array_task, exit_code, id_qos, derived_ec"
)


def load(server: MariaDB, jobs: list[SynthJob], dump: Path) -> None:
    """The real 25.05 schema, then the synthetic jobs and one extern step each."""
    server.load_sql("acct", dump)
    for kind in ("job", "step", "assoc"):
        server.execute(f"CREATE TABLE bench_{kind}_table LIKE localcluster_{kind}_table",
                       database="acct")  # fmt: skip
    conn = server.connect("acct")
    marks = ", ".join(["%s"] * 27)
    users = {j.user.name: j.user for j in jobs}
    assoc = {name: 100 + i for i, name in enumerate(sorted(users))}
    with conn.cursor() as cur:
        # One user association per user, with the 23.11+ lineage of its parent_accounts.
        cur.executemany(
            "INSERT INTO bench_assoc_table (creation_time, mod_time, id_assoc, user, acct, "
            "parent_acct, id_parent, lineage) VALUES (0, 0, %s, %s, %s, '', 1, %s)",
            [
                (assoc[u.name], u.name, u.account, _lineage(u.parent_accounts, u.name))
                for u in users.values()
            ],
        )
        cur.execute("SELECT id, name FROM qos_table")
        qos = {name: int(i) for i, name in cur.fetchall()}
        for name in sorted({j.qos for j in jobs} - set(qos)):
            cur.execute(
                "INSERT INTO qos_table (creation_time, mod_time, name) VALUES (0, 0, %s)", (name,)
            )
            qos[name] = int(cur.lastrowid)
        for i in range(0, len(jobs), 5000):
            chunk = jobs[i : i + 5000]
            cur.executemany(
                f"INSERT INTO bench_job_table ({_JOB_COLUMNS}) VALUES ({marks})",
                [_job_row(j, assoc, qos) for j in chunk],
            )
            cur.executemany(
                "INSERT INTO bench_step_table (job_db_inx, id_step, state, time_start, "
                "time_end, consumed_energy, nodelist, nodes_alloc, node_inx, step_name, "
                "task_cnt, tres_alloc, user_sec, user_usec, sys_sec, sys_usec, "
                "req_cpufreq_min, req_cpufreq, req_cpufreq_gov) "
                "VALUES (%s, %s, 3, %s, %s, %s, '', 1, '', 'extern', 1, '', 0, 0, 0, 0, 0, 0, 0)",
                [
                    (
                        j.db_index,
                        STEP_EXTERN,
                        int(j.start.timestamp()) if j.start else 0,
                        int(j.end.timestamp()),
                        NO_VAL64 if j.energy_db_j is None else j.energy_db_j,
                    )
                    for j in chunk
                ],
            )
    conn.close()


def facts_for(jobs: list[SynthJob]) -> list[JobFact]:
    """The jobs as the stream would hand them over: rendered, normalized, facts."""
    out: list[JobFact] = []
    for job, version in zip(jobs, choose_versions(len(jobs), "mix", 1), strict=True):
        record = normalize_bytes(render(job, version))
        if isinstance(record, JobRecord):
            out.append(fact_from_record(record))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument(
        "--per-job", type=int, default=None, help="jobs for the per-job baseline (default: all)"
    )
    args = parser.parse_args()
    dump = SHARED / "data" / "slurm" / "slurmdbd_25.05_example_dump.sql"
    jobs = generate_jobs(args.jobs, seed=7, cluster=CLUSTER)
    facts = facts_for(jobs)
    base = Path(tempfile.mkdtemp(prefix="jobcarbon-bench-reconcile-"))
    server = MariaDB(base)
    try:
        server.install()
        server.start()
        started = time.perf_counter()
        load(server, jobs, dump)
        print(
            f"loaded {len(jobs)} jobs + steps into MariaDB in {time.perf_counter() - started:.1f} s"
        )
        password = server.add_reader("acct", "reader")
        url = f"mysql+pymysql://reader:{password}@127.0.0.1:{server.port}/acct"
        now = datetime.now(UTC)

        source = SlurmdbdSource(url)
        stage = ReconcileStage(source, settle_s=0)
        source.fetch(CLUSTER, [jobs[0].job_id])  # warm caches and the pool for both paths
        started = time.perf_counter()
        batched: Counter[str] = Counter()
        for i in range(0, len(facts), BATCH):
            result = stage.run(facts[i : i + BATCH], now)
            batched.update(f.reconciliation.status for f in result.done)
        batched_s = time.perf_counter() - started
        batched_queries = source.queries

        sample = facts[: args.per_job] if args.per_job else facts
        started = time.perf_counter()
        single: Counter[str] = Counter()
        before = source.queries
        for fact in sample:
            rec = fact.record
            row = source.fetch_one(CLUSTER, rec.job_id, rec.key.submit_epoch or 0)
            outcome = decide(fact, row, now=now, deadline_at=now, attempts=1)
            assert isinstance(outcome, JobFact)
            single[outcome.reconciliation.status] += 1
        single_s = time.perf_counter() - started
        source.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)

    batched_rate = len(facts) / batched_s
    single_rate = len(sample) / single_s
    print(f"jobs reconciled: {len(facts)} (statuses {dict(sorted(batched.items()))})")
    print(
        f"one query per job (baseline): {single_rate:10,.0f} lookups/s  "
        f"({len(sample)} jobs, {source.queries - before} queries, {single_s:.1f} s)"
    )
    print(
        f"batched ({BATCH} per batch)     : {batched_rate:10,.0f} lookups/s  "
        f"({len(facts)} jobs, {batched_queries} queries, {batched_s:.1f} s)  "
        f"ratio {batched_rate / single_rate:.1f}x"
    )
    if sample is facts and single != batched:
        raise SystemExit(f"the two paths disagree: {single} vs {batched}")


if __name__ == "__main__":
    main()

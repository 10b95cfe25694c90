"""bench/warehouse: load synthetic jobs through the COPY path and the upsert path (jobs/s),
then the per-account monthly footprint through the roll-up vs a scan over facts (ratio).

Runs against a throwaway PostgreSQL 15 started here (as in the tests), or ``--db URL`` of
an empty database. The workload is ``--base`` synthetic jobs (jobcarbon.synth through the
real normalizer, enriched like tests/warehouse/synthdata) replicated under new job ids up
to ``--jobs``; only the sink calls are timed, not the data generation.

Run: ``python -m bench.warehouse [--jobs 1000000] [--upsert-jobs 100000]``.
Targets: COPY >= 50k jobs/s; roll-up query >= 20x faster than the scan.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from pathlib import Path

import msgspec
from sqlalchemy import Engine, text

from schemas.fact import JobFact
from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.sink import SinkResult, copy_facts, write_facts

COPY_TARGET_PER_S = 50_000
ROLLUP_TARGET_RATIO = 20.0
REPLICA_JOB_ID_STEP = 10_000_000

ROLLUP_QUERY = text(
    "SELECT a.name, r.month, SUM(r.jobs), SUM(r.energy_it_j), SUM(r.energy_facility_j),"
    " SUM(r.co2e_g) FROM rollup_account_month r JOIN dim_account a ON a.id = r.account_id"
    " GROUP BY a.name, r.month ORDER BY a.name, r.month"
)
SCAN_QUERY = text(
    "SELECT a.name, CAST(date_trunc('month', f.end_at AT TIME ZONE 'UTC') AS date) AS month,"
    " COUNT(*), SUM(f.energy_it_j), SUM(f.energy_facility_j), SUM(f.co2e_g)"
    " FROM fact_job f JOIN dim_account a ON a.id = f.account_id"
    " GROUP BY a.name, month ORDER BY a.name, month"
)


def replicas(
    base: list[JobFact], n: int, chunk: int, first_copy: int = 0
) -> Iterator[list[JobFact]]:
    """``n`` facts in chunks: the base workload again and again, copy ``k`` under job ids
    shifted by ``k x REPLICA_JOB_ID_STEP`` (copy 0 is the base itself)."""
    out: list[JobFact] = []
    for i in range(n):
        fact = base[i % len(base)]
        shift = (first_copy + i // len(base)) * REPLICA_JOB_ID_STEP
        if shift:
            record = fact.record.replace(job_id=fact.record.job_id + shift)
            fact = msgspec.structs.replace(fact, record=record)
        out.append(fact)
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


def load(
    engine: Engine, chunks: Iterator[list[JobFact]], use_copy: bool
) -> tuple[int, float, float]:
    """Facts landed, wall seconds and this process's CPU seconds spent inside the sink."""
    total = SinkResult()
    wall = cpu = 0.0
    for facts in chunks:
        start, start_cpu = time.perf_counter(), time.process_time()
        if use_copy:
            total += copy_facts(engine, facts, chunk_size=len(facts))
        else:
            total += write_facts(engine, facts, batch_size=500)
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        print(f"  ... {total.inserted:,} jobs, {wall:.0f} s", file=sys.stderr, flush=True)
    assert not total.rejected, total.rejected[:3]
    return total.inserted, wall, cpu


def best_of(engine: Engine, query: object, rounds: int) -> tuple[float, list[tuple]]:  # type: ignore[type-arg]
    best, rows = float("inf"), []
    for _ in range(rounds):
        with engine.connect() as conn:
            start = time.perf_counter()
            rows = [tuple(r) for r in conn.execute(query)]  # type: ignore[call-overload]
            best = min(best, time.perf_counter() - start)
    return best, rows


@contextlib.contextmanager
def databases(db_url: str | None) -> Iterator[tuple[str, str]]:
    """Two empty databases (COPY, upsert): given, or on a throwaway local server."""
    if db_url:
        yield db_url, db_url
        return
    from tests.services.postgres import fresh_database, start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-bench-pg-"))
    server = start_server(tmp)
    try:
        with fresh_database(server) as copy_url, fresh_database(server) as upsert_url:
            yield copy_url, upsert_url
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


def calibration_ns() -> float:
    """Nanoseconds per trivial dict update here and now (how loaded the machine is)."""
    return min(timeit.repeat("d['a'] += 1", "d = {'a': 0}", number=200_000, repeat=5)) / 2e5 * 1e9


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on kill
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs through COPY")
    parser.add_argument("--upsert-jobs", type=int, default=100_000, help="jobs through upsert")
    parser.add_argument("--base", type=int, default=50_000, help="distinct synthetic jobs")
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", help="PostgreSQL URL of an empty database (default: start one)")
    args = parser.parse_args()

    print(f"calibration: {calibration_ns():.0f} ns per Python dict update (machine load)")
    t0 = time.perf_counter()
    base = synthdata.facts(min(args.base, args.jobs), seed=2024)
    print(f"workload: {len(base):,} synthetic jobs in {time.perf_counter() - t0:.0f} s, "
          f"replicated to {args.jobs:,} (COPY) and {args.upsert_jobs:,} (upsert)")  # fmt: skip

    with databases(args.db) as (copy_url, upsert_url):
        copy_engine = make_engine(copy_url)
        migrate.upgrade(copy_engine)
        n, spent, cpu = load(copy_engine, replicas(base, args.jobs, args.chunk), use_copy=True)
        copy_rate = n / spent
        print(f"COPY path   : {n:>9,} jobs in {spent:7.1f} s = {copy_rate:9,.0f} jobs/s "
              f"(target {COPY_TARGET_PER_S:,}); client CPU {cpu:.1f} s = "
              f"{n / cpu:,.0f} jobs per client CPU-second")  # fmt: skip

        if args.db:  # one database given: upsert the next job ids into it
            upsert_engine = copy_engine
        else:
            upsert_engine = make_engine(upsert_url)
            migrate.upgrade(upsert_engine)
        # In a shared database the upsert gets job ids the COPY did not use.
        first_copy = -(-args.jobs // len(base)) if args.db else 0
        fresh = replicas(base, args.upsert_jobs, min(args.chunk, 20_000), first_copy)
        n_up, spent_up, cpu_up = load(upsert_engine, fresh, use_copy=False)
        up_rate = n_up / spent_up
        print(f"upsert path : {n_up:>9,} jobs in {spent_up:7.1f} s = {up_rate:9,.0f} jobs/s "
              f"(COPY is {copy_rate / up_rate:.1f}x faster); client CPU {cpu_up:.1f} s = "
              f"{n_up / cpu_up:,.0f} jobs per client CPU-second")  # fmt: skip

        with copy_engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        t_roll, rows_roll = best_of(copy_engine, ROLLUP_QUERY, args.rounds)
        t_scan, rows_scan = best_of(copy_engine, SCAN_QUERY, args.rounds)
        jobs_roll = sum(r[2] for r in rows_roll)
        jobs_scan = sum(r[2] for r in rows_scan)
        print(f"per-account monthly footprint over {jobs_scan:,} facts "
              f"({len(rows_roll)} account-months):")  # fmt: skip
        print(f"  roll-up   : {t_roll * 1000:9.2f} ms")
        print(f"  fact scan : {t_scan * 1000:9.2f} ms")
        print(f"  ratio     : {t_scan / t_roll:9.1f}x (target {ROLLUP_TARGET_RATIO:.0f}x); "
              f"jobs agree: {jobs_roll == jobs_scan}")  # fmt: skip
        copy_engine.dispose()
        if upsert_engine is not copy_engine:
            upsert_engine.dispose()


if __name__ == "__main__":
    main()

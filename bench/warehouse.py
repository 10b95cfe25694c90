"""bench/warehouse: load synthetic jobs through the COPY path and the upsert path (jobs/s),
then the per-account monthly footprint through the roll-up vs a scan over facts (ratio).

Runs against a throwaway PostgreSQL 15 started here (as in the tests), or ``--db URL`` of
an empty database. The workload is ``--base`` synthetic jobs (jobcarbon.synth through the
real normalizer, enriched like tests/warehouse/synthdata) replicated under new job ids up
to ``--jobs``; only the sink calls are timed, not the data generation.

Run: ``python -m bench.warehouse [--jobs 1000000] [--upsert-jobs 100000]``.
Targets: COPY >= 50k jobs/s; roll-up query >= 20x faster than the scan.

Besides wall-clock rates it prints this process's CPU time per job (``time.process_time``,
all its threads): far less sensitive than wall time to other work on a shared machine, and
the server's (the PostgreSQL processes' CPU from ``/proc``, when the bench started it).
The upsert path runs in batches of ``--upsert-batch`` (what a stream worker's sink does),
on PostgreSQL and, with ``--sqlite-jobs``, on SQLite (the embedded default). With
``--deferred-jobs`` (default: as many as ``--jobs``) the COPY path runs once more into a third
database inside ``deferred_indexes`` (secondary indexes built after the load, timed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
from warehouse.sink import SinkResult, copy_facts, deferred_indexes, write_facts

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


TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(data_dir: Path | None) -> float:
    """CPU seconds of a local PostgreSQL server so far: the postmaster, the backends it
    reaped and the live ones (0.0 when unknown)."""
    if data_dir is None:
        return 0.0
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid):
            total += sum(int(f) for f in fields[11:15]) / TICK  # own + reaped children
        elif fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def load(
    engine: Engine,
    chunks: Iterator[list[JobFact]],
    use_copy: bool,
    batch: int,
    data_dir: Path | None = None,
) -> tuple[int, float, float, float]:
    """Facts landed, wall seconds, this process's CPU seconds spent inside the sink and the
    server's CPU seconds meanwhile."""
    total = SinkResult()
    wall = cpu = 0.0
    server_start = server_cpu(data_dir)
    for facts in chunks:
        start, start_cpu = time.perf_counter(), time.process_time()
        if use_copy:
            total += copy_facts(engine, facts, chunk_size=batch)
        else:
            total += write_facts(engine, facts, batch_size=batch)
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        print(f"  ... {total.inserted:,} jobs, {wall:.0f} s", file=sys.stderr, flush=True)
    assert not total.rejected, total.rejected[:3]
    return total.inserted, wall, cpu, server_cpu(data_dir) - server_start


def best_of(engine: Engine, query: object, rounds: int) -> tuple[float, list[tuple]]:  # type: ignore[type-arg]
    best, rows = float("inf"), []
    for _ in range(rounds):
        with engine.connect() as conn:
            start = time.perf_counter()
            rows = [tuple(r) for r in conn.execute(query)]  # type: ignore[call-overload]
            best = min(best, time.perf_counter() - start)
    return best, rows


def sqlite_upsert(base: list[JobFact], n: int, batch: int) -> None:
    """The upsert path into a fresh SQLite file (the embedded default)."""
    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-bench-sqlite-"))
    engine = make_engine(f"sqlite:///{tmp / 'warehouse.db'}")
    try:
        migrate.upgrade(engine)
        facts = replicas(base, n, batch)
        landed, wall, cpu, _ = load(engine, facts, use_copy=False, batch=batch)
        report("SQLite upsert", landed, wall, cpu)
    finally:
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def databases(db_url: str | None) -> Iterator[tuple[list[str], Path | None]]:
    """Three empty databases (COPY, upsert, deferred-index COPY): given, or on a throwaway
    local server (and its data directory, for its CPU time)."""
    if db_url:
        yield [db_url] * 3, None
        return
    from tests.services.postgres import fresh_database, start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-bench-pg-"))
    server = start_server(tmp)
    try:
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(fresh_database(server)) for _ in range(3)]
            yield urls, server.data_dir
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


def calibration_ns() -> float:
    """Nanoseconds per trivial dict update here and now (how loaded the machine is)."""
    return min(timeit.repeat("d['a'] += 1", "d = {'a': 0}", number=200_000, repeat=5)) / 2e5 * 1e9


def report(
    label: str, n: int, wall: float, cpu: float, extra: str = "", server: float = 0.0
) -> float:
    """Print one path's figures; its wall-clock rate."""
    rate = n / wall
    served = f"; server CPU {server / n * 1e6:.1f} us/job" if server else ""
    print(f"{label:12s}: {n:>9,} jobs in {wall:7.1f} s = {rate:9,.0f} jobs/s{extra}; "
          f"client CPU {cpu:.1f} s = {cpu / n * 1e6:.1f} us/job = "
          f"{n / cpu:,.0f} jobs per client CPU-second{served}")  # fmt: skip
    return rate


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on kill
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs through COPY")
    parser.add_argument("--upsert-jobs", type=int, default=100_000, help="jobs through upsert")
    parser.add_argument("--base", type=int, default=50_000, help="distinct synthetic jobs")
    parser.add_argument("--chunk", type=int, default=100_000, help="facts per copy_facts call")
    parser.add_argument("--copy-chunk", type=int, default=20_000, help="copy_facts chunk_size")
    parser.add_argument("--upsert-batch", type=int, default=1000, help="write_facts batch_size")
    parser.add_argument("--sqlite-jobs", type=int, default=20_000, help="jobs upserted to SQLite")
    parser.add_argument("--deferred-jobs", type=int, help="jobs through deferred-index COPY")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", help="PostgreSQL URL of an empty database (default: start one)")
    args = parser.parse_args()

    print(f"calibration: {calibration_ns():.0f} ns per Python dict update (machine load)")
    t0 = time.perf_counter()
    base = synthdata.facts(min(args.base, args.jobs), seed=2024)
    print(f"workload: {len(base):,} synthetic jobs in {time.perf_counter() - t0:.0f} s, "
          f"replicated to {args.jobs:,} (COPY) and {args.upsert_jobs:,} (upsert)")  # fmt: skip

    deferred_jobs = args.jobs if args.deferred_jobs is None else args.deferred_jobs
    with databases(args.db) as ((copy_url, upsert_url, deferred_url), data_dir):
        copy_engine = make_engine(copy_url)
        migrate.upgrade(copy_engine)
        chunks = replicas(base, args.jobs, args.chunk)
        n, spent, cpu, served = load(copy_engine, chunks, True, args.copy_chunk, data_dir)
        target = f" (target {COPY_TARGET_PER_S:,})"
        copy_rate = report("COPY path", n, spent, cpu, target, served)

        if args.db:  # one database given: upsert the next job ids into it
            upsert_engine = copy_engine
        else:
            upsert_engine = make_engine(upsert_url)
            migrate.upgrade(upsert_engine)
        # In a shared database the upsert gets job ids the COPY did not use.
        first_copy = -(-args.jobs // len(base)) if args.db else 0
        # One write_facts call per batch, as a stream worker makes them.
        fresh = replicas(base, args.upsert_jobs, args.upsert_batch, first_copy)
        n_up, spent_up, cpu_up, served_up = load(
            upsert_engine, fresh, False, args.upsert_batch, data_dir
        )
        up_rate = report("upsert path", n_up, spent_up, cpu_up, server=served_up)
        print(f"  COPY / upsert: {copy_rate / up_rate:.1f}x (wall), "
              f"{(n / cpu) / (n_up / cpu_up):.1f}x (client CPU)")  # fmt: skip
        if deferred_jobs and not args.db:
            deferred_engine = make_engine(deferred_url)
            migrate.upgrade(deferred_engine)
            chunks = replicas(base, deferred_jobs, args.chunk)
            start, start_cpu = time.perf_counter(), time.process_time()
            server_start = server_cpu(data_dir)
            with deferred_indexes(deferred_engine):
                n_d, _, _, _ = load(deferred_engine, chunks, True, args.copy_chunk)
            report(
                "COPY, indexes built after",
                n_d,
                time.perf_counter() - start,
                time.process_time() - start_cpu,
                target,
                server_cpu(data_dir) - server_start,
            )
            deferred_engine.dispose()
        if args.sqlite_jobs:
            sqlite_upsert(base, args.sqlite_jobs, args.upsert_batch)

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

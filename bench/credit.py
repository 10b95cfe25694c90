"""bench/credit: latency of POST /v1/check at 100 concurrent requests over a warehouse of
1M jobs and 5k users, against the same answer computed by a naive sum over the facts.

Everything is real: PostgreSQL (temp server), munged (temp key), the API served by uvicorn
(``jobcarbon credit serve``) in its own processes; each request carries a fresh MUNGE
credential. The history is synthetic (jobcarbon.synth), shifted to end now, loaded with
COPY plus the roll-ups the sink maintains.

Two comparisons, measured in the same run:
  1. end to end: p50/p99 of /v1/check at ``--concurrency`` in-flight requests;
  2. the usage numbers behind a check (past 4 weeks, running, period used): the roll-up
     query the API runs vs a naive apportioned sum over ``fact_job`` (same answers, checked),
     each timed sequentially: ratio of p50 and p99.
Run: ``python -m bench.credit [--jobs N] [--users N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from bench._services import free_port, start_munged, start_postgres
from bench.credit_load import load
from jobcarbon.credit.policy import period_bounds
from jobcarbon.credit.sql import SqlCreditStore
from jobcarbon.credit.store import UsageQuery
from jobcarbon.synth import generate_jobs
from warehouse import migrate
from warehouse.engine import make_engine

TARGET_P99_MS = 20.0

# The naive answer: every fact of the user / account, apportioned by hand (no roll-ups).
_SHARE = """
  CASE WHEN f.start_epoch IS NOT NULL AND f.end_epoch > f.start_epoch
       THEN GREATEST(0, LEAST(f.end_epoch, :to_epoch) - GREATEST(f.start_epoch, :from_epoch))
            / CAST(f.end_epoch - f.start_epoch AS DOUBLE PRECISION)
       WHEN COALESCE(f.end_epoch, f.start_epoch, f.submit_epoch) >= :from_epoch
            AND COALESCE(f.end_epoch, f.start_epoch, f.submit_epoch) < :to_epoch THEN 1
       ELSE 0 END
"""
NAIVE_SQL = text(
    "SELECT"
    " (SELECT COALESCE(SUM(f.co2e_g * " + _SHARE.replace(":from_epoch", ":past_epoch") + "), 0)"
    "    FROM fact_job f JOIN dim_user u ON u.id = f.user_id WHERE u.name = :user) AS past,"
    " (SELECT COALESCE(SUM(f.co2e_g * " + _SHARE.replace(":from_epoch", ":period_epoch") + "), 0)"
    "    FROM fact_job f JOIN dim_account a ON a.id = f.account_id WHERE a.name = :account)"
    " AS period"
)  # constant SQL, bound parameters only


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


POLICY = (
    "past_window_days = 28\n[default]\nallocation_kg = 5000\nperiod = 'quarter'\nmode = 'warn'\n"
)


async def _drive(
    url: str, bodies: list[dict], creds: list[str], concurrency: int, errors: list[str]
) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # TCP_NODELAY as curl (cli_filter.lua) sets it: without it a POST's header and body
    # segments meet the server's delayed ACK and every request waits ~40 ms (Nagle).
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                started = time.perf_counter()
                try:
                    r = await client.post(
                        "/v1/check", json=bodies[i], headers={"X-Munge-Credential": creds[i]}
                    )
                except httpx.TransportError as exc:  # counted and reported, not hidden
                    errors.append(
                        f"{type(exc).__name__} after {time.perf_counter() - started:.1f} s"
                    )
                    continue
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200:
                    raise RuntimeError(f"check failed {r.status_code}: {r.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--naive-samples", type=int, default=300)
    args = parser.parse_args()

    import pymunge

    tmp = Path(tempfile.mkdtemp(prefix="jc-bench-credit-"))
    tmp.chmod(0o755)  # the postgres user must reach its data directory
    (tmp / "pg").mkdir()
    (tmp / "munge").mkdir()
    url, stop_pg = start_postgres(tmp / "pg")
    sock, munged = start_munged(tmp / "munge")
    server = None
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        days = args.jobs / (3.0 * 376)  # the synthetic machine's load (jobcarbon.synth)
        t0 = time.perf_counter()
        jobs = generate_jobs(args.jobs, seed=11, n_users=args.users,
                             start=now - timedelta(days=days + 1))  # fmt: skip
        t1 = time.perf_counter()
        engine = make_engine(url)
        migrate.upgrade(engine)
        load(engine, jobs)
        t2 = time.perf_counter()
        users = sorted({j.user.name for j in jobs})
        print(f"warehouse: {len(jobs):,} jobs, {len(users):,} users "
              f"(generate {t1 - t0:.0f} s, load facts + roll-ups {t2 - t1:.0f} s)")  # fmt: skip

        # Requests: a job's user, account, partition, size, limit and name.
        rng = random.Random(5)
        sample = [jobs[rng.randrange(len(jobs))] for _ in range(args.requests + 200)]
        bodies = [
            {"user": j.user.name, "account": j.account, "partition": j.partition,
             "nodes": max(1, len(j.nodes)), "cpus": j.cpus, "gpus": j.gpus,
             "time_limit_s": j.time_limit_s, "job_name": j.job_name}
            for j in sample
        ]  # fmt: skip
        cluster = jobs[0].cluster
        policy = tmp / "policy.toml"
        policy.write_text(POLICY)
        uid = os.getuid()
        config = tmp / "jobcarbon.toml"
        config.write_text(
            f'[warehouse]\nurl = "{url}"\n[credit]\nmunge_socket = "{sock}"\n'
            f'cluster = "{cluster}"\npolicy_file = "{policy}"\n[credit.user_uids]\n'
            + "".join(f'{u} = {uid}\n' for u in users)
        )  # fmt: skip
        port = free_port()
        jobcarbon = shutil.which("jobcarbon", path=os.path.dirname(sys.executable)) or "jobcarbon"
        server = subprocess.Popen(
            [jobcarbon, "--config", str(config), "credit", "serve", "--port", str(port),
             "--workers", str(args.workers)],
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        ctx = pymunge.MungeContext()
        ctx.socket = sock
        creds = [ctx.encode().decode() for _ in bodies]
        errors: list[str] = []
        asyncio.run(_drive(base, bodies[:200], creds[:200], args.concurrency, []))  # warm-up
        started = time.perf_counter()
        latencies = asyncio.run(_drive(base, bodies[200:], creds[200:], args.concurrency, errors))
        wall = time.perf_counter() - started
        p50, p99 = _percentiles(latencies)
        print(f"/v1/check at {args.concurrency} concurrent: {len(latencies):,} requests, "
              f"{len(latencies) / wall:,.0f} req/s, p50 {p50 * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms (target p99 <= {TARGET_P99_MS:.0f} ms: "
              f"{'met' if p99 * 1000 <= TARGET_P99_MS else 'NOT met'}); "
              f"{len(errors)} connection errors {errors[:3]}")  # fmt: skip

        seq_n = min(300, len(bodies) - 200)
        seq_bodies = [dict(b) for b in bodies[200 : 200 + seq_n]]
        seq_creds = [ctx.encode().decode() for _ in seq_bodies]
        single = asyncio.run(_drive(base, seq_bodies, seq_creds, 1, errors))
        s50, s99 = _percentiles(single)
        print(f"/v1/check one at a time: {len(single)} requests, p50 {s50 * 1000:.1f} ms, "
              f"p99 {s99 * 1000:.1f} ms")  # fmt: skip
        load_avg = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load_avg:.1f} during the run")

        # Roll-up usage query vs naive sum over facts: same answers, timed sequentially.
        store = SqlCreditStore(engine, cluster=cluster)
        day = datetime(now.year, now.month, now.day, tzinfo=UTC)
        past_from = day - timedelta(days=28)
        period_start, _ = period_bounds("quarter", now)
        fast_t: list[float] = []
        naive_t: list[float] = []
        worst = 0.0
        for body in bodies[: args.naive_samples]:
            q = UsageQuery(body["user"], body["account"], now, past_from, period_start, None,
                           False, now - timedelta(days=7))  # fmt: skip
            s = time.perf_counter()
            usage = store.usage(q)
            fast_t.append(time.perf_counter() - s)
            s = time.perf_counter()
            with engine.connect() as conn:
                row = conn.execute(NAIVE_SQL, {
                    "user": body["user"], "account": body["account"],
                    "past_epoch": int(past_from.timestamp()),
                    "period_epoch": int(period_start.timestamp()),
                    "to_epoch": int(now.timestamp()) + 10 * 86_400,
                }).one()  # fmt: skip
            naive_t.append(time.perf_counter() - s)
            pairs = ((usage.past_co2e_g, row.past), (usage.period_used_g, row.period))
            for got, want in pairs:
                worst = max(worst, abs(got - want) / max(1.0, abs(want)))
        f50, f99 = _percentiles(fast_t)
        n50, n99 = _percentiles(naive_t)
        print(f"usage numbers: roll-ups p50 {f50 * 1000:.2f} ms p99 {f99 * 1000:.2f} ms; "
              f"naive sum over facts p50 {n50 * 1000:.2f} ms p99 {n99 * 1000:.2f} ms; "
              f"largest relative difference {worst:.1e}")  # fmt: skip
        print(f"ratio (naive / roll-ups): p50 {n50 / f50:.1f}x, p99 {n99 / f99:.1f}x; "
              f"mean {statistics.fmean(naive_t) / statistics.fmean(fast_t):.1f}x")  # fmt: skip
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        munged.terminate()
        munged.wait(timeout=10)
        subprocess.run(stop_pg, capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

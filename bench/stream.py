"""bench/stream: synthetic records through broker -> stream workers -> warehouse.

Prints, all measured in the same run on the same broker:
  * end-to-end records/s (pre-produced backlog, workers started, until every fact landed),
    per worker process;
  * p50/p95 produce-to-warehouse latency at a fixed offered load (default 1k records/s),
    from each record's produce time to its ``fact_job.inserted_at``;
  * the ratio of pipeline throughput to a bare confluent-kafka consume + ``json.loads`` of
    the same backlog (the baseline);
  * CPU time per record (user + system) of the worker processes over the throughput run,
    against the baseline's ``time.process_time()`` per record: far less sensitive to a
    loaded machine than the wall-clock rates;
  * each worker's peak resident memory (``VmHWM``).
Targets: >= 10k records/s per worker, p95 <= 2 s at 1k/s, <= 300 MB per worker.

Run: ``python -m bench.stream [--records N] [--workers W] [--warehouse sqlite|postgres]
[--warehouse-url URL]``. By default the bench starts a throw-away PostgreSQL 15 (as
``bench._services``: fsync off) and one worker; ``--warehouse sqlite`` uses a SQLite file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer
from sqlalchemy import text

from consumers.kafka.config import consumer_config
from consumers.kafka.producer import Producer
from consumers.stream.local import LocalStack, local_stack
from jobcarbon.cli.demo import expected_jobs
from jobcarbon.settings import KafkaSettings, Settings
from jobcarbon.synth import choose_versions, generate_jobs, kafka_key_and_headers, render
from warehouse.engine import make_engine

TARGET_PER_WORKER = 10_000
TARGET_P95_S = 2.0
TARGET_RSS_MB = 300


def messages(n: int, seed: int, cluster: str) -> list[tuple[bytes | None, bytes, list]]:
    jobs = generate_jobs(n, seed, cluster=cluster)
    out = []
    for job, version in zip(jobs, choose_versions(n, "mix", seed), strict=True):
        key, headers = kafka_key_and_headers(job, version)
        out.append((key, render(job, version), headers))
    return out


def baseline_rate(kafka: KafkaSettings, n: int) -> tuple[float, float]:
    """Bare confluent-kafka consume + json.loads of ``n`` records (a fresh group):
    (records/s wall, CPU seconds per record of this process)."""
    consumer = Consumer(consumer_config(kafka, group=f"bench-baseline-{time.time()}"))
    consumer.subscribe([kafka.topic_jobcomp])
    seen, start, cpu_start = 0, None, 0.0
    while seen < n:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                continue
            if start is None:
                start, cpu_start = time.perf_counter(), time.process_time()
            with contextlib.suppress(ValueError):
                json.loads(msg.value().rstrip(b"\x00"))
            seen += 1
    cpu = time.process_time() - cpu_start
    consumer.close()
    return n / (time.perf_counter() - (start or time.perf_counter())), cpu / n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_facts(url: str, cluster: str | None = None) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        if cluster is None:
            value = conn.execute(text("SELECT count(*) FROM fact_job")).scalar_one()
        else:
            value = conn.execute(
                text(
                    "SELECT count(*) FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id "
                    "WHERE c.name = :c"
                ),
                {"c": cluster},
            ).scalar_one()
    engine.dispose()
    return int(value)


def wait_count(
    stack: LocalStack, url: str, want: int, timeout_s: float, cluster: str | None = None
) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_workers()
        if count_facts(url, cluster) >= want:
            return time.monotonic()
        time.sleep(0.5)
    raise SystemExit(f"timed out: {count_facts(url, cluster)} of {want} facts after {timeout_s} s")


def worker_metrics(port: int) -> dict[str, float]:
    """A worker's time per stage so far: ``wall:<stage>`` (seconds inside the stage,
    ``jobcarbon_stage_batch_seconds_sum``) and ``cpu:<stage>`` (its threads' CPU seconds,
    ``jobcarbon_stage_cpu_seconds_total``)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        for prefix, kind in (
            ("jobcarbon_stage_batch_seconds_sum{", "wall"),
            ("jobcarbon_stage_cpu_seconds_total{", "cpu"),
        ):
            if line.startswith(prefix):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                out[f"{kind}:{stage}"] = float(line.split()[-1])
    return out


def broker_cpu_seconds() -> float:
    """User + system CPU of the local tansu broker (this process's child named tansu)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split(" (", 1)[1].rsplit(")", 1)
        fields = rest.split()
        if name.startswith("tansu") and int(fields[1]) == os.getpid():
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def postgres_cpu_seconds(data_dir: Path | None) -> float | None:
    """User + system CPU of the PostgreSQL server started by the bench (postmaster and
    every backend and helper process it forked), None for an outside server."""
    if data_dir is None:
        return None
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency_run(stack: LocalStack, url: str, rate: float, seconds: float) -> list[float]:
    """Produce at ``rate`` records/s for ``seconds``; latencies from produce to inserted_at."""
    kafka = stack.settings.kafka
    cluster = "benchlat"
    batch = messages(int(rate * seconds), 99, cluster)
    want = expected_jobs(v for _, v, _ in batch)
    producer = Producer(kafka)
    sent_at: dict[tuple[int, int], float] = {}
    start = time.time()
    jobs = generate_jobs(len(batch), 99, cluster=cluster)
    for i, ((key, value, headers), job) in enumerate(zip(batch, jobs, strict=True)):
        due = start + i / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        sent_at[(job.job_id, int(job.submit.timestamp()))] = time.time()
        producer.produce(kafka.topic_jobcomp, value, key=key, headers=headers)
    producer.flush()
    wait_count(stack, url, want, 600, cluster)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT f.job_id, f.submit_epoch, f.inserted_at FROM fact_job f "
                "JOIN dim_cluster c ON c.id = f.cluster_id WHERE c.name = :c"
            ),
            {"c": cluster},
        ).all()
    engine.dispose()
    out = []
    for job_id, submit_epoch, inserted_at in rows:
        if isinstance(inserted_at, str):
            inserted_at = datetime.fromisoformat(inserted_at)
        if inserted_at.tzinfo is None:
            inserted_at = inserted_at.replace(tzinfo=UTC)
        sent = sent_at.get((job_id, submit_epoch))
        if sent is not None:
            out.append(inserted_at.timestamp() - sent)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered load, records/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--warehouse", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--warehouse-url", default=None, help="an existing PostgreSQL URL")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        url, pg_data = args.warehouse_url, None
        if url is None and args.warehouse == "postgres":
            from bench._services import start_postgres

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-")))
            url, stop = start_postgres(tmp)
            stack.callback(subprocess.run, stop, check=False, capture_output=True)
            pg_data = tmp / "data"
        run(args, url, pg_data)


def run(args: argparse.Namespace, warehouse_url: str | None, pg_data: Path | None) -> None:
    """The throughput, latency and memory runs against one broker and warehouse."""
    settings = Settings()
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"consumer_group": "bench"})}
    )
    backlog = messages(args.records, 1, "benchtp")
    want = expected_jobs(v for _, v, _ in backlog)
    with local_stack(settings, workers=0, warehouse_url=warehouse_url) as stack:
        url = stack.settings.warehouse.url
        kafka = stack.settings.kafka
        backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
        print(
            f"warehouse: {backend}; broker: tansu (memory) {kafka.bootstrap_servers}; "
            f"{kafka.partitions} partitions; {args.workers} worker process(es); "
            f"{args.records:,} records, {want:,} distinct finished jobs"
        )
        producer = Producer(kafka)
        for key, value, headers in backlog:
            producer.produce(kafka.topic_jobcomp, value, key=key, headers=headers)
        producer.flush()
        base, base_cpu = baseline_rate(kafka, len(backlog))
        print(
            f"baseline  confluent-kafka consume + json.loads: {base:,.0f} records/s, "
            f"{base_cpu * 1e6:.1f} us CPU per record"
        )

        started = time.monotonic()
        for _ in range(args.workers):
            stack.start_worker()
        first_deadline = time.monotonic() + 120
        landed_first = 0
        while landed_first == 0 and time.monotonic() < first_deadline:
            stack.check_workers()
            time.sleep(0.05)
            landed_first = count_facts(url)
        first = time.monotonic()
        cpu_first = [cpu_seconds(p.pid) for p in stack.workers]
        stages_first = [worker_metrics(port) for port in stack.metrics_ports]
        server_first = postgres_cpu_seconds(pg_data)
        broker_first = broker_cpu_seconds()
        done = wait_count(stack, url, want, 3600)
        cpu_done = [cpu_seconds(p.pid) for p in stack.workers]
        stages_done = [worker_metrics(port) for port in stack.metrics_ports]
        server_done = postgres_cpu_seconds(pg_data)
        broker_done = broker_cpu_seconds()
        # Measured from the first landed batch on: startup, group join and that batch's
        # records are excluded from both the rate and the CPU time per record.
        measured = want - landed_first
        rate = measured / (done - first)
        print(
            f"pipeline  {want:,} facts landed: {rate:,.0f} records/s end to end "
            f"({rate / args.workers:,.0f} per worker; group join + first batch of "
            f"{landed_first:,} {first - started:.1f} s excluded, "
            f"{want / (done - started):,.0f}/s including)"
        )
        print(f"ratio     pipeline / baseline: {rate / base:.3f}")
        cpu_per_record = sum(b - a for a, b in zip(cpu_first, cpu_done, strict=True)) / measured
        print(
            f"cpu       workers: {cpu_per_record * 1e6:.0f} us CPU per record "
            f"(= {1 / cpu_per_record:,.0f} records per worker CPU-second); "
            f"{cpu_per_record / base_cpu:.1f}x the baseline's CPU per record"
        )

        for i, (a, b) in enumerate(zip(stages_first, stages_done, strict=True)):
            per = {k: (b[k] - a.get(k, 0.0)) / measured * 1e6 for k in b}  # us per record
            worker_cpu = (cpu_done[i] - cpu_first[i]) / measured * 1e6
            sink = per.get("cpu:sink", 0.0)
            threads = ", ".join(
                f"{stage} {per.get(f'cpu:{stage}', 0.0):.0f}"
                for stage in ("consume", "ingest", "commit")
            )
            rest = (
                worker_cpu
                - sink
                - sum(per.get(f"cpu:{stage}", 0.0) for stage in ("consume", "ingest", "commit"))
            )
            print(
                f"cpu split worker {i}: sink {sink:.0f} us per record, everything else "
                f"{worker_cpu - sink:.0f} us ({threads}, other threads {rest:.0f}: librdkafka, "
                "faust loop, state follower, GC)"
            )
            print(
                f"wall      worker {i}: per record ingest {per.get('wall:ingest', 0.0):.0f} us "
                f"(consume to facts), sink {per.get('wall:sink', 0.0):.0f} us (warehouse "
                "write, the server included); the two overlap batch by batch"
            )
            print(
                f"loop      worker {i}: per record waiting for the fetch "
                f"{per.get('wall:consume', 0.0):.0f} us, pure stages "
                f"{per.get('wall:ingest', 0.0):.0f}, sink columns "
                f"{per.get('wall:prepare', 0.0):.0f}, waiting for the previous write "
                f"{per.get('wall:wait_write', 0.0):.0f}"
            )
        if server_first is not None and server_done is not None:
            print(
                f"server    PostgreSQL: {(server_done - server_first) / measured * 1e6:.0f} us "
                "CPU per record (every server process)"
            )
        print(
            f"broker    tansu: {(broker_done - broker_first) / measured * 1e6:.0f} us CPU per "
            "record (fetches, commits, the worker's producer)"
        )

        latencies = latency_run(stack, url, args.rate, args.latency_seconds)
        q = statistics.quantiles(latencies, n=100)
        print(
            f"latency   at {args.rate:,.0f} records/s offered for {args.latency_seconds:.0f} s: "
            f"p50 {q[49]:.2f} s, p95 {q[94]:.2f} s ({len(latencies)} records)"
        )
        for i, process in enumerate(stack.workers):
            print(f"memory    worker {i}: peak RSS {peak_rss_mb(process.pid):.0f} MB")
        print(
            f"targets   >= {TARGET_PER_WORKER:,}/s per worker, p95 <= {TARGET_P95_S} s, "
            f"<= {TARGET_RSS_MB} MB per worker"
        )


if __name__ == "__main__":
    main()

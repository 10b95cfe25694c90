"""Helpers for the stream integration tests: real worker processes, expected totals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, text

from consumers import pipeline
from consumers.ingest import Rejection
from consumers.kafka.broker import free_port
from consumers.kafka.producer import Producer
from consumers.state import EnrichmentState
from jobcarbon.settings import KafkaSettings, Settings
from jobcarbon.synth import choose_versions, generate_jobs, kafka_key_and_headers, record_dict
from jobcarbon.synth import render as render_job
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.sink import write_facts

Message = tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]
REPO = Path(__file__).resolve().parents[3]


def synth_messages(n: int, seed: int, **synth: Any) -> list[Message]:
    """(key, value, headers) of ``n`` synthetic jobs in mixed Slurm layouts (``synth``: more
    arguments of ``generate_jobs``, e.g. ``cluster``)."""
    jobs = generate_jobs(n, seed, **synth)
    out: list[Message] = []
    for job, version in zip(jobs, choose_versions(len(jobs), "mix", seed), strict=True):
        key, headers = kafka_key_and_headers(job, version)
        out.append((key, render_job(job, version), headers or None))
    return out


def adversarial_good(seed: int) -> list[bytes]:
    """Valid records with hostile but legal strings: they must land verbatim."""
    job = generate_jobs(2, seed)[0]
    base = record_dict(job, "24.11")
    values = []
    for i, name in enumerate(["o'brien'; DROP TABLE fact_job;--", "us\u00e9r\tta\u0007b"]):
        doc = dict(base, jobid=900_000_000 + i, username=name, job_name="x" * 5000)
        values.append(orjson.dumps(doc))
    return values


def adversarial_bad(seed: int) -> list[tuple[bytes, str]]:
    """(original bytes, expected reason code) for records that must be dead-lettered."""
    job = generate_jobs(1, seed)[0]
    base = record_dict(job, "24.11")
    return [
        (b"", "empty"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "undecodable"),
        (b"[1, 2, 3]", "not_an_object"),
        (orjson.dumps({k: v for k, v in base.items() if k != "jobid"}), "missing_field"),
        (json.dumps(dict(base, jobid=10**30)).encode(), "invalid_field"),
        (orjson.dumps(dict(base, jobid="1; DELETE FROM fact_job")), "invalid_field"),
        (orjson.dumps(dict(base, username="nul\u0000inside")), "nul_in_string"),
    ]


def migrated_sqlite(path: Path) -> str:
    """URL of a SQLite warehouse at ``path`` migrated to head."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def expected_warehouse(
    values: Iterable[bytes], path: Path, settings: Settings | None = None
) -> Engine:
    """The warehouse the same records give through the pure functions and the sink, with
    no broker in between: what the stream must match exactly (stages from ``settings``)."""
    engine = make_engine(migrated_sqlite(path))
    clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    stages = pipeline.stages_for(settings or Settings(), clock=clock)
    facts = []
    for value in values:
        result = pipeline.process(value, EnrichmentState(), stages=stages)
        if not isinstance(result, Rejection):
            facts.append(result)
    write_facts(engine, facts)
    return engine


def totals(engine: Engine) -> dict[str, object]:
    """Counts and sums that must agree between two warehouses."""
    with engine.connect() as conn:
        jobs, energy, co2e = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(energy_it_j), 0), coalesce(sum(co2e_g), 0) "
                "FROM fact_job"
            )
        ).one()
        per_user = conn.execute(
            text(
                "SELECT u.name, count(*), coalesce(sum(f.energy_it_j), 0) FROM fact_job f "
                "JOIN dim_user u ON u.id = f.user_id GROUP BY u.name ORDER BY u.name"
            )
        ).all()
    return {
        "jobs": jobs,
        "energy_j": energy,
        "co2e_g": round(float(co2e), 3),  # float sums: order of addition differs
        "per_user": [tuple(r) for r in per_user],
    }


def fact_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM fact_job")).scalar_one())


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Worker:
    """A ``jobcarbon worker`` process with its own metrics port and log file."""

    def __init__(self, env: dict[str, str], warehouse_url: str, log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        args = ["worker", "--web-port", str(self.port), "--no-migrate", "--loglevel", "warning"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobcarbon", *args],
            env={**os.environ, **env, "JOBCARBON_WAREHOUSE__URL": warehouse_url},
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def serving(self) -> bool:
        """True once the worker answers on its metrics port."""
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def counter(self, name: str, **labels: str) -> float:
        """The value of one sample (0 when absent or the worker is not serving yet)."""
        try:
            text = self.metrics()
        except OSError:
            return 0.0
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{name}{{{want}}}" if want else name
        for line in text.splitlines():
            if line.startswith(prefix + " "):
                return float(line.split()[-1])
        return 0.0

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class PacedProducer(threading.Thread):
    """Produce ``messages`` to the jobcomp topic spread evenly over ``seconds``, in the
    background, as Slurm sends records while jobs finish: a fault injected while it runs
    falls mid-stream however fast the workers are. ``result()`` joins and checks that the
    broker confirmed every record."""

    def __init__(self, kafka: KafkaSettings, messages: list[Message], seconds: float) -> None:
        super().__init__(name="paced-producer", daemon=True)
        self.kafka = kafka
        self.messages = messages
        self.seconds = seconds
        self.sent = 0  # records handed to the producer so far
        self.delivered = 0
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            producer = Producer(self.kafka)
            start = time.monotonic()
            step = self.seconds / max(1, len(self.messages))
            for i, (key, value, headers) in enumerate(self.messages):
                delay = start + i * step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.produce(self.kafka.topic_jobcomp, value, key=key, headers=headers)
                self.sent = i + 1
            self.delivered = producer.flush(timeout_s=120).delivered
        except BaseException as exc:  # surfaced by result()
            self.error = exc

    def result(self, timeout_s: float = 600.0) -> int:
        """Records the broker confirmed (raises what the producer raised)."""
        self.join(timeout_s)
        assert not self.is_alive(), "the paced producer did not finish"
        if self.error is not None:
            raise self.error
        assert self.delivered == len(self.messages)
        return self.delivered

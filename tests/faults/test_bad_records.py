"""Corrupt, oversized and adversarial records mixed into the stream at random places: every
good record lands (hostile strings verbatim), every bad one is dead-lettered exactly once
with its reason and original bytes, and no bad record stops or slows the good ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from consumers.kafka.reader import read_topic
from jobcarbon.settings import KafkaSettings
from tests.consumers.stream.harness import Worker, fact_count, migrated_sqlite, wait_for
from tests.faults.stack import (
    SCALES,
    Scale,
    assert_dlq_exact,
    assert_warehouse_exact,
    fault_stream,
    produce,
    worker_env,
)
from warehouse.engine import make_engine

pytestmark = [pytest.mark.fault, pytest.mark.broker, pytest.mark.timeout(7200)]

SEED = 505


@pytest.mark.parametrize("scale", SCALES)
def test_bad_records_mixed_into_the_stream_are_dead_lettered_exactly(
    scale: Scale,
    kafka: KafkaSettings,
    kafka_env: dict[str, str],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    # about 3 % of the stream is bad
    stream = fault_stream(scale, SEED, tmp_path, bad_copies=max(1, scale.records // 500))
    bad, n_expected = stream.bad, stream.n_expected
    produce(kafka, stream.messages)
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    workers += [Worker(worker_env(kafka_env), url, tmp_path, f"w{i}") for i in range(2)]

    wait_for(lambda: fact_count(engine) >= n_expected, scale.timeout_s, f"{n_expected} facts")
    wait_for(
        lambda: len(read_topic(kafka, kafka.topic_dlq, expect=len(bad), timeout_s=5)) >= len(bad),
        60,
        f"{len(bad)} dead letters",
    )
    assert_warehouse_exact(engine, stream.expected)
    assert_dlq_exact(kafka, bad, redelivered=False)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM dim_user")).scalars())
        clusters = set(conn.execute(text("SELECT name FROM dim_cluster")).scalars())
    assert "o'brien'; DROP TABLE fact_job;--" in names  # bound parameters: stored verbatim
    assert "us\u00e9r\tta\u0007b" in names
    assert not any("DROP TABLE" in c for c in clusters)  # the NUL one was dead-lettered
    dead = sum(
        w.counter("jobcarbon_records_dead_lettered_total", stage="ingest", reason="oversized")
        for w in workers
    )
    assert dead == sum(1 for _, reason in bad if reason == "oversized")

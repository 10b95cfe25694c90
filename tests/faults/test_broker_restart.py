"""Restart the broker mid-stream (tansu with durable storage): records produced before and
after the restart all land once, the DLQ holds the bad ones, workers carry on by themselves."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from consumers.kafka.admin import ensure_topics
from jobcarbon.settings import KafkaSettings, load_settings
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
from tests.services.object_store import DurableBroker
from warehouse.engine import make_engine

pytestmark = [pytest.mark.fault, pytest.mark.broker, pytest.mark.timeout(7200)]

SEED = 202


@pytest.mark.parametrize("scale", SCALES)
def test_broker_restarted_mid_stream_loses_and_doubles_nothing(
    scale: Scale,
    durable_broker: DurableBroker,
    workers: list[Worker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    env = worker_env(
        {
            "JOBCARBON_KAFKA__BOOTSTRAP_SERVERS": durable_broker.address,
            "JOBCARBON_KAFKA__CONSUMER_GROUP": f"jobcarbon-{tag}",
            "JOBCARBON_KAFKA__PARTITIONS": "4",
            "JOBCARBON_KAFKA__SINK_BATCH_WITHIN_S": "0.2",
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kafka: KafkaSettings = load_settings().kafka
    ensure_topics(kafka)

    stream = fault_stream(scale, SEED, tmp_path)
    n_expected = stream.n_expected
    half = len(stream.messages) // 2
    produce(kafka, stream.messages[:half])
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    workers += [Worker(env, url, tmp_path, f"w{i}") for i in range(2)]

    wait_for(lambda: fact_count(engine) >= n_expected // 5, scale.timeout_s, "the first facts")
    durable_broker.stop()
    landed = fact_count(engine)
    time.sleep(min(scale.outage_s, 10.0))
    durable_broker.start()  # same port, same storage
    assert landed < n_expected, "the stream finished before the restart; raise the volume"
    produce(kafka, stream.messages[half:])  # Slurm keeps sending after the restart

    wait_for(lambda: fact_count(engine) >= n_expected, scale.timeout_s, f"{n_expected} facts")
    assert all(w.process.poll() is None for w in workers), "a worker died with the broker"
    assert_warehouse_exact(engine, stream.expected)
    assert_dlq_exact(kafka, stream.bad, redelivered=True)

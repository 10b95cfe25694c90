"""kill -9 stream workers at random moments during a replay, restart each one, and find
nothing lost or doubled: the warehouse equals the source, the DLQ holds the bad records."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from jobcarbon.settings import KafkaSettings
from tests.consumers.stream.harness import (
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
    worker_env,
)
from warehouse.engine import make_engine

pytestmark = [pytest.mark.fault, pytest.mark.broker, pytest.mark.timeout(7200)]

SEED = 101


@pytest.mark.parametrize("scale", SCALES)
def test_workers_killed_at_random_moments_lose_and_double_nothing(
    scale: Scale,
    kafka: KafkaSettings,
    kafka_env: dict[str, str],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    stream = fault_stream(scale, SEED, tmp_path)
    n_expected = stream.n_expected
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    env = worker_env(kafka_env)
    workers += [Worker(env, url, tmp_path, f"w{i}") for i in range(2)]
    wait_for(lambda: all(w.serving() for w in workers), scale.timeout_s, "workers serving")
    # The replay, sent over scale.produce_s while the two workers consume it.
    paced = PacedProducer(kafka, stream.messages, scale.produce_s)
    wait_for(lambda: fact_count(engine) > 0, scale.timeout_s, "the first facts")

    # Kill points: random fractions of the stream as it is being sent (workers that drain
    # a backlog in a second would otherwise finish between two kills), then a random delay
    # on top, so a kill falls anywhere in a batch (reading, writing, committing offsets).
    stream_len = len(paced.messages)
    points = sorted(rng.uniform(0.05, 0.8) * stream_len for _ in range(scale.kills))
    for kill, point in enumerate(points, start=1):
        wait_for(lambda p=point: paced.sent >= p, scale.timeout_s, f"{point:.0f} records sent")
        time.sleep(rng.uniform(0.0, 0.5))
        victim = rng.randrange(len(workers))
        landed = fact_count(engine)
        assert landed < n_expected, "the replay finished before the kill; raise the volume"
        workers[victim].stop(signal.SIGKILL)
        print(f"kill {kill}: worker {victim} at {landed}/{n_expected} facts")
        workers[victim] = Worker(env, url, tmp_path, f"w{victim}-restart{kill}")

    paced.result()
    wait_for(lambda: fact_count(engine) >= n_expected, scale.timeout_s, f"{n_expected} facts")
    assert_warehouse_exact(engine, stream.expected)
    assert_dlq_exact(kafka, stream.bad, redelivered=True)

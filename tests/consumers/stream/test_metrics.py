"""The worker's metrics: the batch histogram exposes what prometheus_client's would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from consumers.stream.metrics import BatchHistogram, StreamMetrics

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


def exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if not line.startswith("#") and "_created" not in line]


def test_batch_histogram_exposes_what_observing_one_value_at_a_time_gives() -> None:
    rng = random.Random(3)
    batches = [
        [rng.choice((0.0, 0.05, 0.1, 60.0, 61.0, rng.uniform(0, 70))) for _ in range(n)]
        for n in (0, 1, 7, 400)
    ]
    reference, batched = CollectorRegistry(), CollectorRegistry()
    one = Histogram("lat_seconds", "doc", buckets=BUCKETS, registry=reference)
    many = BatchHistogram("lat_seconds", "doc", BUCKETS, batched)
    for batch in batches:
        for value in batch:
            one.observe(value)
        many.observe_many(batch)
    got, want = exposition(batched), exposition(reference)
    assert [line for line in got if "_sum" not in line] == [
        line for line in want if "_sum" not in line
    ]
    (got_sum,) = (float(line.split()[-1]) for line in got if "_sum" in line)
    (want_sum,) = (float(line.split()[-1]) for line in want if "_sum" in line)
    assert abs(got_sum - want_sum) < 1e-9 * max(1.0, want_sum)


def test_worker_metrics_render_the_latency_histogram() -> None:
    metrics = StreamMetrics()
    metrics.end_to_end_seconds.observe_many([0.3, 0.7, 3.0])
    text = metrics.render().decode()
    assert 'jobcarbon_produce_to_warehouse_seconds_bucket{le="0.5"} 1.0' in text
    assert "jobcarbon_produce_to_warehouse_seconds_count 3.0" in text

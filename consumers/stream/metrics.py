"""Prometheus metrics of one worker (own registry: no global state at import time).

The hot path updates them once per batch, never once per record."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BatchHistogram(Collector):
    """A histogram observed a batch of values at a time: the values are sorted and counted
    per bucket in one pass (``Histogram.observe`` takes a lock per value). Exposed as a
    Prometheus histogram (``_bucket{le}``, ``_count``, ``_sum``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value in its bucket (``le``: the first bound at or above it)."""
        ordered = sorted(values)
        if not ordered:
            return
        counts, low = [], 0
        for bound in self._bounds:
            high = bisect.bisect_right(ordered, bound, low)
            counts.append(high - low)
            low = high
        counts.append(len(ordered) - low)
        total = sum(ordered)
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = self._counts, self._sum
        bounds = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=list(zip(bounds, itertools.accumulate(counts), strict=True)),
            sum_value=total,
        )


class StreamMetrics:
    """Records in, out and dead-lettered per stage, consumer lag, stage latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.records_in = Counter(
            "jobcarbon_records_in",
            "Records consumed by a stage.",
            ["stage"],
            registry=self.registry,
        )
        self.records_out = Counter(
            "jobcarbon_records_out",
            "Records a stage passed on (ingest: to jobs.normalized; sink: to the warehouse).",
            ["stage"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "jobcarbon_records_dead_lettered",
            "Records sent to the dead-letter topic, by stage and reason code.",
            ["stage", "reason"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "jobcarbon_stage_batch_seconds",
            "Time one stage spent on one batch (pure functions plus I/O; consume: waiting for "
            "the fetch; prepare: the sink's columns on the loop's thread; wait_write: the loop "
            "waiting for the previous batch's write).",
            ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.stage_cpu_seconds = Counter(
            "jobcarbon_stage_cpu_seconds",
            "CPU time the worker's threads spent in one stage (consume: the Kafka fetch; "
            "ingest: the pure stages and dead letters; sink: the warehouse write; commit: the "
            "producer flush and offset commit).",
            ["stage"],
            registry=self.registry,
        )
        self.end_to_end_seconds = BatchHistogram(
            "jobcarbon_produce_to_warehouse_seconds",
            "From the raw record's Kafka timestamp to its warehouse commit.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.lag = Gauge(
            "jobcarbon_consumer_lag",
            "Messages between the last one processed and the partition's high watermark.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.sink_retries = Counter(
            "jobcarbon_sink_retries",
            "Warehouse writes retried after a database error.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))

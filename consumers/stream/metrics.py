"""Prometheus metrics of one worker (own registry: no global state at import time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
            "Time one stage spent on one batch (pure functions plus I/O).",
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
        self.end_to_end_seconds = Histogram(
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

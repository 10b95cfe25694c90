"""A confluent-kafka producer with delivery reports and bounded retries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka import KafkaException as KafkaClientError  # for shells, see package doc
from confluent_kafka import Producer as _Producer

from consumers.kafka.config import producer_config
from jobcarbon.settings import KafkaSettings

__all__ = ["DeliveryError", "DeliveryReport", "KafkaClientError", "Producer"]

Headers = Sequence[tuple[str, bytes]]


class DeliveryError(RuntimeError):
    """Some records were not delivered after every retry; ``failures`` says which and why."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        shown = "; ".join(f"{topic}: {error}" for topic, error in failures[:3])
        super().__init__(f"{len(failures)} record(s) not delivered: {shown}")


@dataclass
class DeliveryReport:
    """What the broker acknowledged so far."""

    delivered: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


class Producer:
    """Produce records and count broker acknowledgements.

    ``produce`` retries a full local queue (``BufferError``) by polling, at most ``retries``
    times; librdkafka retries transient broker errors itself (``message.send.max.retries``).
    ``flush`` raises ``DeliveryError`` when any record finally failed."""

    def __init__(self, kafka: KafkaSettings, *, retries: int = 50, **extra: Any) -> None:
        self._producer = _Producer(producer_config(kafka, **extra))
        self._retries = retries
        self.report = DeliveryReport()

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.report.delivered += 1
        else:
            self.report.failures.append((msg.topic(), str(err)))

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record; its delivery is counted in ``report``."""
        kwargs: dict[str, Any] = {"key": key, "on_delivery": self._on_delivery}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms:
            kwargs["timestamp"] = timestamp_ms
        for attempt in range(self._retries + 1):
            try:
                self._producer.produce(topic, value, **kwargs)
                break
            except BufferError:
                if attempt == self._retries:
                    raise
                self._producer.poll(0.1)  # serve delivery reports to drain the queue
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> DeliveryReport:
        """Wait for every queued record; raise DeliveryError if any failed or timed out."""
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(timeout_s)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        if remaining:
            self.report.failures.append(("*", f"{remaining} record(s) still queued after flush"))
        if self.report.failures:
            raise DeliveryError(self.report.failures)
        return self.report

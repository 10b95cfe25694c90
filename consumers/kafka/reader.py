"""Read a topic from the beginning without a consumer group (inspection: DLQ, tests, bench)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from consumers.kafka.config import client_config
from jobcarbon.settings import KafkaSettings


class Record(NamedTuple):
    """One message as read back."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int


def read_topic(
    kafka: KafkaSettings, topic: str, *, expect: int | None = None, timeout_s: float = 10.0
) -> list[Record]:
    """Every record of ``topic`` (all partitions), stopping at the end of every partition,
    or once ``expect`` records arrived, or after ``timeout_s``."""
    consumer = Consumer(
        client_config(
            kafka,
            **{
                "group.id": "jobcarbon-reader",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    records: list[Record] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return records
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if expect is None and len(at_end) == len(meta.partitions):
                break
            if expect is not None and len(records) >= expect:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(int(msg.partition() or 0))
                continue
            partition = int(msg.partition() or 0)
            at_end.discard(partition)
            headers: Any = msg.headers() or []
            records.append(
                Record(
                    partition,
                    int(msg.offset() or 0),
                    _as_bytes(msg.key()),
                    _as_bytes(msg.value()) or b"",
                    {str(k): _as_bytes(v) or b"" for k, v in headers},
                    msg.timestamp()[1],
                )
            )
    finally:
        consumer.close()
    return records


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value

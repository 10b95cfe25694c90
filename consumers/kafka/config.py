"""Client configuration from ``KafkaSettings`` (one place for librdkafka and faust options)."""

from __future__ import annotations

from typing import Any

from jobcarbon.settings import KafkaSettings


def client_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka properties: bootstrap servers, then ``client_properties``, then ``extra``."""
    config: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers}
    config.update(kafka.client_properties)
    config.update(extra)
    return config


def producer_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """Producer properties: idempotent-safe acks, small linger for batching, bounded retries."""
    return client_config(
        kafka,
        **{
            "acks": "all",
            "linger.ms": 5,
            "message.send.max.retries": 5,
            "retry.backoff.ms": 200,
            "delivery.timeout.ms": 30_000,
            **extra,
        },
    )


def consumer_config(kafka: KafkaSettings, group: str | None = None, **extra: Any) -> dict[str, Any]:
    """Consumer properties; offsets are committed by the caller, never automatically."""
    return client_config(
        kafka,
        **{
            "group.id": group or kafka.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **extra,
        },
    )


def faust_broker_url(kafka: KafkaSettings) -> str:
    """faust's ``broker`` setting: ``kafka://host:port;host2:port2``."""
    hosts = [h.strip() for h in kafka.bootstrap_servers.split(",") if h.strip()]
    return ";".join(f"kafka://{h}" for h in hosts)


def faust_broker_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """faust App keyword arguments for the broker (timeouts short enough to join in seconds).

    ``client_properties`` with ``security.protocol`` SSL/SASL are not translated to aiokafka:
    production deployments set ``broker_credentials`` themselves (see docs)."""
    return {
        "broker": faust_broker_url(kafka),
        "broker_session_timeout": kafka.session_timeout_s,
        "broker_rebalance_timeout": kafka.session_timeout_s,
        "broker_heartbeat_interval": kafka.heartbeat_interval_s,
        "broker_commit_interval": kafka.commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
    }

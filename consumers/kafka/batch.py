"""A confluent-kafka group consumer read in batches, committed explicitly by the caller.

The stream's hot path (``consumers.stream.hot_path``) uses it: ``consume(n, within_s)``
returns up to ``n`` messages (fewer after ``within_s``), already stripped to plain tuples;
``commit`` writes exactly the offsets given, synchronously. Auto-commit is off, so an offset
moves only after the caller says the records landed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumers.kafka.config import consumer_config
from jobcarbon.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Called with the (topic, partition) pairs being revoked, before they go.
OnRevoke = Callable[[list[tuple[str, int]]], None]


class Message(NamedTuple):
    """One consumed record, as plain values."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    timestamp_ms: int


class BatchConsumer:
    """Subscribe ``topics`` in the settings' consumer group; batches in, explicit commits out.

    Rebalance callbacks run inside ``consume`` (on the caller's thread), so a caller that
    processes each batch to the end before consuming again never has a batch in flight
    when partitions are revoked; ``on_revoke`` is still offered for callers that do."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        *,
        on_revoke: OnRevoke | None = None,
        group: str | None = None,
        **extra: Any,
    ) -> None:
        self._consumer = Consumer(
            consumer_config(
                kafka,
                group,
                **{
                    "session.timeout.ms": int(kafka.session_timeout_s * 1000),
                    "heartbeat.interval.ms": int(kafka.heartbeat_interval_s * 1000),
                    "enable.partition.eof": False,
                    # librdkafka pre-fetches up to 64 MB by default: a backlog would sit in
                    # the worker's memory. 6 MB holds about 2.5 batches of 2000 records.
                    "queued.max.messages.kbytes": 6144,
                    # Once that queue is full, librdkafka postpones the partition's next fetch
                    # by this much (default 1000 ms); the loop drains 6 MB in well under a
                    # second, and then waited for the fetch.
                    "fetch.queue.backoff.ms": 20,
                    **extra,
                },
            )
        )
        self._on_revoke = on_revoke
        self.assignment: set[tuple[str, int]] = set()
        self._consumer.subscribe(list(topics), on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions assigned", extra={"partitions": sorted(self.assignment)})

    def _revoked(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        if self._on_revoke is not None:
            self._on_revoke(revoked)
        self.assignment -= set(revoked)

    def consume(self, n: int, within_s: float) -> list[Message]:
        """Up to ``n`` messages, waiting at most ``within_s``; errors are logged, skipped."""
        out: list[Message] = []
        msg: Any  # confluent's stubs say None is possible; not for a message without error
        for msg in self._consumer.consume(num_messages=n, timeout=within_s):
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            out.append(
                Message(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key(),
                    msg.value(),
                    msg.headers(),
                    msg.timestamp()[1],
                )
            )
        return out

    def commit(self, next_offsets: Iterable[tuple[str, int, int]]) -> bool:
        """Commit ``(topic, partition, next offset)`` synchronously; False when the broker
        refused (e.g. the group rebalanced meanwhile: the records are processed again by
        the partition's next owner, which the idempotent sink absorbs)."""
        offsets = [TopicPartition(t, p, o) for t, p, o in next_offsets]
        if not offsets:
            return True
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit refused: %s", exc)
            return False
        return True

    def rewind(self, offsets: Iterable[tuple[str, int, int]]) -> None:
        """Read again from ``(topic, partition, offset)`` (partitions still assigned)."""
        for t, p, o in offsets:
            if (t, p) in self.assignment:
                self._consumer.seek(TopicPartition(t, p, o))

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages between the committed-or-consumed position and the high watermark,
        per assigned partition (from the last fetch: no broker round trip)."""
        out: dict[tuple[str, int], int] = {}
        assigned = [TopicPartition(t, p) for t, p in sorted(self.assignment)]
        if not assigned:
            return out
        try:
            positions = self._consumer.position(assigned)
        except KafkaException:
            return out
        for tp in positions:
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            position = tp.offset if tp.offset >= 0 else 0
            out[(tp.topic, tp.partition)] = max(0, high - position)
        return out

    def close(self) -> None:
        """Leave the group (nothing is committed: auto-commit is off)."""
        self._consumer.close()

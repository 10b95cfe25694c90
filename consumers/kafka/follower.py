"""Read whole topics from the beginning into local state, in a background thread.

Every worker needs every zone's intensity and every site's PUE, not just the partitions the
group assigns it, so state topics are read without a consumer group (like a faust
GlobalTable) and each message is handed to a callback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from consumers.kafka.config import client_config
from jobcarbon.settings import KafkaSettings

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]


class TopicFollower:
    """Follow ``topics`` from offset 0 forever; ``on_message(topic, value)`` per record."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[str], on_message: OnMessage) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._on_message = on_message
        self._stop = threading.Event()
        #: Set once every partition was read to its end as of the start (faust's table
        #: recovery): records enriched before that would miss state already published.
        self.caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-follower", daemon=True)

    def start(self) -> None:
        """Start following in the background."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _assign(self, consumer: Consumer) -> set[tuple[str, int]]:
        """Assign every partition from offset 0; the ones still to read to their end."""
        partitions = []
        metadata = consumer.list_topics(timeout=10)
        for topic in self._topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(partitions)
        return {(tp.topic, tp.partition) for tp in partitions}

    def _run(self) -> None:
        consumer = Consumer(
            client_config(
                self._kafka,
                **{
                    "group.id": "jobcarbon-state-follower",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                },
            )
        )
        try:
            behind = self._assign(consumer)
            if not behind:
                self.caught_up.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        behind.discard((str(msg.topic()), int(msg.partition() or 0)))
                        if not behind:
                            self.caught_up.set()
                    else:
                        log.warning("state topic error: %s", error)
                    continue
                try:
                    self._on_message(str(msg.topic()), msg.value() or b"")
                except Exception:  # a bad point must not stop the follower
                    log.exception("state message not applied", extra={"topic": msg.topic()})
        finally:
            consumer.close()

"""The worker's hot path: raw jobcomp records in batches -> warehouse, offsets after commit.

One loop on its own thread (the faust app runs it as a service, see ``app.py``)::

    consume up to N raw records (or what arrived within T seconds)     confluent-kafka
    -> normalize, fact, enrich, reconcile, stage by stage over the batch consumers.pipeline
    -> dead letters (original bytes, reason) and jobs.normalized (Avro) producer
    -> write the facts                                                  warehouse sink
    -> wait for the broker to confirm every dead letter and record      producer flush
    -> commit exactly the offsets of this batch                         consumer commit

The write of one batch overlaps the consuming and processing of the next (``run``). A crash
anywhere before the commit replays the batch (the sink is idempotent on the natural key, a
dead letter may appear twice). Rebalance callbacks run inside ``consume``: the write in
flight is finished and committed first, so nothing is committed beyond what landed.
Metrics move once per batch; the cyclic GC runs between batches (``collector``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from consumers import pipeline
from consumers.ingest import Rejection
from consumers.kafka.batch import BatchConsumer, Message, OnRevoke
from consumers.kafka.producer import DeliveryError, Producer
from consumers.kafka.serializers import dlq_message, header_map, normalized_message
from consumers.sink import FactWriter, SinkRejection, is_transient, job_label, write_isolating
from consumers.stream.collector import BetweenBatches
from consumers.stream.metrics import StreamMetrics
from consumers.stream.state import LocalState
from jobcarbon.settings import Settings
from schemas.fact import JobFact

log = logging.getLogger(__name__)

#: Reason code of a fact the warehouse refused (DLQ ``reason``).
SINK_REJECTED = "sink_rejected"
_MAX_BACKOFF_S = 30.0
_LAG_EVERY_S = 1.0
#: Seconds between two full collections of the cyclic GC (``consumers.stream.collector``).
_GC_EVERY_S = 30.0
#: The interpreter's switch interval while the loop runs (``sys.setswitchinterval``).
SWITCH_INTERVAL_S = 0.00025


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Hand the GIL over after ``seconds`` instead of Python's 5 ms while the block runs.

    The database thread gives up the GIL at every round trip to the warehouse (about 75 per
    batch of 4000 with the old sink: dimension lookups, stored rows, COPY, roll-ups,
    commits) and must then wait for it while this thread runs the pure stages of the next
    batch: with the default interval each round trip waits up to 5 ms for the GIL (a psycopg
    ``SELECT 1`` measured 2-9 ms against a CPU-bound thread instead of 30-90 us, 0.4-0.5 ms
    at 0.2 ms), so the overlap slowed the write by more than it saved. The interval is the
    process's; the previous one is restored after the block."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record for the DLQ: its stage, the rejection, and where it was read."""

    stage: str
    rejection: Rejection
    source: str


def source_of(message: Message) -> str:
    """``topic/partition/offset``: where a dead letter came from."""
    return f"{message.topic}/{message.partition}/{message.offset}"


def next_offsets(batch: list[Message]) -> list[tuple[str, int, int]]:
    """The offsets to commit after ``batch`` landed: one past the highest per partition."""
    top: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic, m.partition)
        if m.offset >= top.get(tp, -1):
            top[tp] = m.offset
    return [(t, p, o + 1) for (t, p), o in top.items()]


def first_offsets(batch: list[Message]) -> list[tuple[str, int, int]]:
    """The lowest offset per partition of ``batch`` (where to rewind to replay it)."""
    low: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic, m.partition)
        if tp not in low or m.offset < low[tp]:
            low[tp] = m.offset
    return [(t, p, o) for (t, p), o in low.items()]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A processed batch waiting for the warehouse: its messages, (index, fact) pairs and,
    when the writer splits its work, what its ``prepare`` made of the facts."""

    batch: list[Message]
    facts: list[tuple[int, JobFact]]
    sink_input: Any = None


@dataclass(frozen=True, slots=True)
class _Pending:
    batch: list[Message]
    future: Future[bool]


class HotPath:
    """The consume -> process -> write -> commit loop of one worker."""

    def __init__(
        self,
        settings: Settings,
        *,
        writer: FactWriter,
        stages: pipeline.Stages,
        state: LocalState,
        metrics: StreamMetrics,
        consumer_factory: Callable[[OnRevoke], BatchConsumer] | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.stages = stages
        self.state = state
        self.metrics = metrics
        kafka = settings.kafka
        self._consumer_factory = consumer_factory or (
            lambda on_revoke: BatchConsumer(kafka, [kafka.topic_jobcomp], on_revoke=on_revoke)
        )
        self._lag_at = 0.0

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Consume and land batches until ``stop`` is set.

        Records are read only once ``ready`` is set (the state topics were read to their
        end). Two batches overlap: while the database thread writes batch N (mostly waiting for
        the server, the GIL released), this thread consumes and processes batch N+1. Batch
        N's offsets are committed once its write returned and the producer confirmed every
        record, before N+1 is handed over, so writes stay in order and at most one batch is
        ever uncommitted. A rebalance (inside ``consume``) first finishes and commits the
        write in flight; a stop finishes it too, or leaves it uncommitted when the
        warehouse is down."""
        kafka = self.settings.kafka
        self._pending: _Pending | None = None

        def on_revoke(_revoked: list[tuple[str, int]]) -> None:
            self._finish(consumer, producer)  # never commit beyond what landed

        producer = Producer(kafka)
        consumer = self._consumer_factory(on_revoke)  # joins the group in the background
        if ready is not None and not self._wait_ready(ready, stop):
            consumer.close()
            return
        db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink")
        consume_cpu = self.metrics.stage_cpu_seconds.labels("consume")
        # Wall time of the loop's own steps: which of the two threads sets the pace.
        consume_wall = self.metrics.stage_seconds.labels("consume")
        wait_wall = self.metrics.stage_seconds.labels("wait_write")
        try:
            with BetweenBatches(_GC_EVERY_S) as collector, switch_interval(SWITCH_INTERVAL_S):
                while not stop.is_set():
                    started, cpu = time.perf_counter(), time.thread_time()
                    batch = consumer.consume(kafka.sink_batch_max, kafka.sink_batch_within_s)
                    consume_cpu.inc(time.thread_time() - cpu)
                    consume_wall.observe(time.perf_counter() - started)
                    prepared = self.prepare(batch, producer) if batch else None
                    started = time.perf_counter()
                    try:
                        landed = self._finish(consumer, producer)
                        wait_wall.observe(time.perf_counter() - started)
                    except DeliveryError as exc:
                        # The broker did not confirm a dead letter (or normalized record):
                        # read both batches again, with a fresh producer.
                        log.warning("delivery failed, replaying from the batch: %s", exc)
                        replay = (self._pending.batch if self._pending else []) + batch
                        self._pending = None
                        consumer.rewind(first_offsets(replay))
                        producer = Producer(kafka)
                        stop.wait(1.0)
                        continue
                    if not landed:
                        break  # stopped while the warehouse was down: nothing committed
                    if prepared is not None:
                        future = db.submit(self.land, prepared, producer, stop)
                        self._pending = _Pending(batch, future)
                    self._refresh_lag(consumer)
                    collector.between_batches()
                self._finish(consumer, producer)
        finally:
            db.shutdown(wait=True)
            consumer.close()

    @staticmethod
    def _wait_ready(ready: threading.Event, stop: threading.Event) -> bool:
        """Wait for the enrichment state (records enriched before it arrived would get the
        fallback intensity); False if stopped first."""
        started, warn_after_s = time.monotonic(), 30.0
        while not ready.wait(0.1):
            if stop.is_set():
                return False
            if time.monotonic() - started >= warn_after_s:
                log.warning("still waiting for the state topics (%.0f s)", warn_after_s)
                warn_after_s += 30.0
        return True

    def _finish(self, consumer: BatchConsumer, producer: Producer) -> bool:
        """Wait for the batch in flight, confirm its records, commit its offsets. False
        when its write gave up (stopped during a warehouse outage): nothing committed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        if not pending.future.result():
            return False
        cpu = time.thread_time()
        producer.flush()
        consumer.commit(next_offsets(pending.batch))
        self.metrics.stage_cpu_seconds.labels("commit").inc(time.thread_time() - cpu)
        return True

    def prepare(self, batch: list[Message], producer: Producer) -> Prepared:
        """The pure stages over one batch; ingest dead letters and normalized records are
        queued on the producer (confirmed before the batch is committed)."""
        kafka = self.settings.kafka
        m = self.metrics
        started, cpu = time.perf_counter(), time.thread_time()
        m.records_in.labels("ingest").inc(len(batch))
        result = pipeline.process_batch(
            [
                (msg.value, msg.key, header_map(msg.headers) if msg.headers else None)
                for msg in batch
            ],
            self.state.snapshot(),
            self.stages,
            default_cluster=self.settings.default_cluster,
            max_bytes=kafka.max_record_bytes,
        )
        m.records_out.labels("ingest").inc(len(result.records))
        m.records_in.labels("sink").inc(len(result.records))
        for i, stage, rejection in result.rejected:
            self._dead_letter(producer, DeadLetter(stage, rejection, source_of(batch[i])))
        if kafka.publish_normalized:
            for i, record in result.records:
                key, value, headers = normalized_message(record)
                producer.produce(
                    kafka.topic_normalized,
                    value,
                    key=key,
                    headers=headers,
                    timestamp_ms=batch[i].timestamp_ms,
                )
        m.stage_seconds.labels("ingest").observe(time.perf_counter() - started)
        m.stage_cpu_seconds.labels("ingest").inc(time.thread_time() - cpu)
        return Prepared(batch, result.facts, self._prepare_sink(result.facts))

    def _prepare_sink(self, facts: list[tuple[int, JobFact]]) -> Any:
        """The writer's CPU work for these facts, on this thread (None when the writer has
        no separate ``prepare``, or it failed: ``land`` then writes the facts as they are).

        Why here: the database thread's wall time per batch (its own CPU, the server's, and
        waiting for the GIL) sets the worker's pace; validating and hashing on this thread
        leaves it only the round trips."""
        prepare = getattr(self.writer, "prepare", None)
        if prepare is None or not facts:
            return None
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return prepare([fact for _, fact in facts])
        except Exception:  # the write path isolates what the data causes
            log.exception("sink prepare failed; the batch is written fact by fact if needed")
            return None
        finally:
            self.metrics.stage_cpu_seconds.labels("sink").inc(time.thread_time() - cpu)
            self.metrics.stage_seconds.labels("prepare").observe(time.perf_counter() - started)

    def land(self, prepared: Prepared, producer: Producer, stop: threading.Event) -> bool:
        """Write the batch's facts (the database thread); facts the warehouse refuses are
        dead-lettered. False when ``stop`` was set during a warehouse outage."""
        m = self.metrics
        started, cpu = time.perf_counter(), time.thread_time()
        facts = [fact for _, fact in prepared.facts]
        rejected = self._write(facts, stop, prepared.sink_input)
        if rejected is None:
            return False
        if rejected:
            index_of = {job_label(f): i for i, f in prepared.facts}
            fact_of = dict(prepared.facts)
            for job, reason in rejected:
                i = index_of.get(job, -1)
                raw = fact_of[i].record.to_json() if i >= 0 else job.encode()
                source = source_of(prepared.batch[i]) if i >= 0 else "sink"
                self._dead_letter(
                    producer, DeadLetter("sink", Rejection(SINK_REJECTED, reason, raw), source)
                )
        m.records_out.labels("sink").inc(len(facts) - len(rejected))
        now_ms = time.time() * 1000
        m.end_to_end_seconds.observe_many(
            [
                max(0.0, (now_ms - msg.timestamp_ms) / 1000)
                for msg in prepared.batch
                if msg.timestamp_ms > 0
            ]
        )
        m.stage_seconds.labels("sink").observe(time.perf_counter() - started)
        m.stage_cpu_seconds.labels("sink").inc(time.thread_time() - cpu)
        return True

    # -- helpers ----------------------------------------------------------------------------

    def _dead_letter(self, producer: Producer, letter: DeadLetter) -> None:
        rejection = letter.rejection
        value, headers = dlq_message(rejection, letter.source)
        producer.produce(self.settings.kafka.topic_dlq, value, headers=headers)
        self.metrics.dead_lettered.labels(letter.stage, rejection.reason).inc()
        log.warning(
            "dead-lettered",
            extra={
                "stage": letter.stage,
                "reason": rejection.reason,
                "detail": rejection.detail,
                "source": letter.source,
            },
        )

    def _write(
        self, facts: list[JobFact], stop: threading.Event, sink_input: Any = None
    ) -> list[SinkRejection] | None:
        """Write until it succeeds: transient errors are retried with backoff, never
        skipped. None when ``stop`` was set while waiting (the batch stays uncommitted).
        With ``sink_input`` (the writer's ``prepare`` of ``facts``) the writer lands that;
        if the data makes it raise, ``write_isolating`` finds the facts that cause it."""
        if not facts:
            return []
        delay = 0.2
        while True:
            try:
                if sink_input is not None:
                    try:
                        return list(self.writer.write_prepared(sink_input))  # type: ignore[attr-defined]
                    except Exception as exc:
                        if is_transient(exc):
                            raise
                        sink_input = None  # isolate below, fact by fact where needed
                return write_isolating(self.writer, facts)
            except Exception as exc:  # only transient errors reach here
                self.metrics.sink_retries.inc()
                log.warning("warehouse write failed; retrying in %.1f s: %s", delay, exc)
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _refresh_lag(self, consumer: BatchConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = now
        for (topic, partition), lag in consumer.lag().items():
            self.metrics.lag.labels(topic, str(partition)).set(lag)

"""The faust app factory: topics, agents (one per stage), the metrics page, state feed.

``create_app(settings, writer=...)`` builds everything from one settings object; nothing
happens at import time. Agents are thin: they decode messages, call ``consumers.pipeline``,
and send or write the results. Offsets: ``take_events`` acks a batch only after the agent
body has finished with it, and the sink agent returns only after the database commit, so a
committed offset always means the facts are in the warehouse (a crash replays; the sink is
idempotent on the natural key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from consumers import pipeline
from consumers.ingest import Rejection
from consumers.kafka.config import faust_broker_settings
from consumers.kafka.follower import TopicFollower
from consumers.kafka.serializers import dlq_message, header_map, normalized_message
from consumers.sink import FactWriter, SinkRejection, job_label, write_isolating
from consumers.stream.metrics import StreamMetrics
from consumers.stream.state import LocalState
from jobcarbon.settings import Settings
from schemas.avro_codec import decode_job_record
from schemas.fact import JobFact
from schemas.job import JobRecordError

log = logging.getLogger(__name__)

#: Reason codes the stream adds to the ingest ones.
UNDECODABLE_AVRO = "undecodable_avro"
SINK_REJECTED = "sink_rejected"
_MAX_BACKOFF_S = 30.0


class StreamApp:
    """The app and what its agents share (metrics, state, positions for lag)."""

    def __init__(
        self,
        settings: Settings,
        *,
        writer: FactWriter,
        datadir: Path,
        web_port: int | None = None,
        stages: pipeline.Stages | None = None,
        follow_state: bool = True,
        log_config: dict[str, Any] | None = None,
    ) -> None:
        kafka = settings.kafka
        self.settings = settings
        self.writer = writer
        self.stages = stages or pipeline.stages_for(settings, clock=lambda: datetime.now(UTC))
        self.metrics = StreamMetrics()
        self.state = LocalState(kafka.topic_intensity, kafka.topic_power)
        self.positions: dict[tuple[str, int], int] = {}
        self.follower = (
            TopicFollower(kafka, [kafka.topic_intensity, kafka.topic_power], self.state.apply)
            if follow_state
            else None
        )
        # One thread for database writes: writes are sequential per worker anyway.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink")
        self.app = faust.App(
            kafka.consumer_group,
            **faust_broker_settings(kafka),
            datadir=str(datadir),
            web_port=kafka.worker_web_port if web_port is None else web_port,
            web_host="127.0.0.1",
            web_bind="0.0.0.0",  # noqa: S104 - the metrics endpoint is meant to be scraped
            autodiscover=False,
            key_serializer="raw",
            value_serializer="raw",
            store="memory://",
            logging_config=log_config,
            producer_linger=0.005,
            stream_buffer_maxsize=max(4096, 4 * kafka.sink_batch_max),
        )

        def topic(name: str) -> Any:
            return self.app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=kafka.partitions,
            )

        self.raw = topic(kafka.topic_jobcomp)
        self.normalized = topic(kafka.topic_normalized)
        self.dlq = topic(kafka.topic_dlq)
        self.app.agent(self.raw, name="ingest")(self.ingest_agent)
        self.app.agent(self.normalized, name="sink")(self.sink_agent)

        async def metrics_view(view: Any, request: Any) -> Any:  # faust binds ``view``
            return await self.metrics_page(view, request)

        self.app.page("/metrics")(metrics_view)
        self.app.task(self.start_state)

    # -- shells ---------------------------------------------------------------------------

    async def ingest_agent(self, stream: Any) -> None:
        """slurm.jobcomp -> jobs.normalized (Avro, keyed) or slurm.jobcomp.dlq."""
        kafka = self.settings.kafka
        default_cluster = self.settings.default_cluster
        m = self.metrics
        async for events in stream.take_events(kafka.sink_batch_max, kafka.sink_batch_within_s):
            started = time.perf_counter()
            m.records_in.labels("ingest").inc(len(events))
            for event in events:
                message = event.message
                result = pipeline.ingest(
                    event.value,
                    default_cluster=default_cluster,
                    headers=header_map(event.headers),
                    key=event.key if isinstance(event.key, bytes) else None,
                )
                if isinstance(result, Rejection):
                    await self._dead_letter("ingest", result, message)
                else:
                    key, value, headers = normalized_message(result)
                    await self.normalized.send(
                        key=key, value=value, headers=headers, timestamp=message.timestamp
                    )
                    m.records_out.labels("ingest").inc()
                self.positions[(message.topic, message.partition)] = message.offset
            m.stage_seconds.labels("ingest").observe(time.perf_counter() - started)

    async def sink_agent(self, stream: Any) -> None:
        """jobs.normalized -> enrich -> reconcile -> warehouse, in batches."""
        kafka = self.settings.kafka
        m = self.metrics
        async for events in stream.take_events(kafka.sink_batch_max, kafka.sink_batch_within_s):
            started = time.perf_counter()
            m.records_in.labels("sink").inc(len(events))
            snapshot = self.state.snapshot()
            facts: list[JobFact] = []
            dead: list[tuple[Rejection, Any]] = []
            for event in events:
                try:
                    record = decode_job_record(event.value)
                except (JobRecordError, TypeError, KeyError) as exc:
                    detail = f"{type(exc).__name__}: {exc}"
                    dead.append((Rejection(UNDECODABLE_AVRO, detail, event.value), event.message))
                    continue
                result = pipeline.to_fact(record, snapshot, self.stages)
                if isinstance(result, Rejection):
                    dead.append((result, event.message))
                else:
                    facts.append(result)
            rejected = await self._write(facts)
            if rejected:
                raw_of = {job_label(f): f.record.to_json() for f in facts}
                for job, reason in rejected:
                    raw = raw_of.get(job, job.encode())
                    dead.append((Rejection(SINK_REJECTED, reason, raw), None))
            for rejection, message in dead:
                await self._dead_letter("sink", rejection, message)
            m.records_out.labels("sink").inc(len(facts) - len(rejected))
            now = time.time()
            for event in events:
                message = event.message
                self.positions[(message.topic, message.partition)] = message.offset
                if message.timestamp:
                    m.end_to_end_seconds.observe(max(0.0, now - message.timestamp))
            m.stage_seconds.labels("sink").observe(time.perf_counter() - started)

    async def metrics_page(self, web: Any, request: Any) -> Any:
        """``GET /metrics``: Prometheus text format, lag refreshed at scrape time."""
        self._update_lag()
        # aiohttp refuses parameters in content_type=; the full type goes in as a header.
        return web.bytes(
            self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def start_state(self) -> None:
        """Start following the state topics (a background thread) for the worker's life."""
        if self.follower is None:
            return
        self.follower.start()
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            self.follower.stop()

    # -- helpers --------------------------------------------------------------------------

    async def _dead_letter(self, stage: str, rejection: Rejection, message: Any) -> None:
        source = f"{message.topic}/{message.partition}/{message.offset}" if message else f"{stage}"
        value, headers = dlq_message(rejection, source)
        await self.dlq.send(value=value, headers=headers)
        self.metrics.dead_lettered.labels(stage, rejection.reason).inc()
        log.warning(
            "dead-lettered",
            extra={
                "stage": stage,
                "reason": rejection.reason,
                "detail": rejection.detail,
                "source": source,
            },
        )

    async def _write(self, facts: list[JobFact]) -> list[SinkRejection]:
        """Write in the database thread until it succeeds; transient errors are retried with
        backoff (never skipped). If the worker is stopped meanwhile, the write in flight is
        allowed to finish before the batch is acknowledged."""
        if not facts:
            return []
        delay = 0.2
        while True:
            future = self._db.submit(write_isolating, self.writer, facts)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                with suppress(Exception):
                    future.result(timeout=60)
                raise
            except Exception as exc:  # only transient errors reach here
                self.metrics.sink_retries.inc()
                log.warning("warehouse write failed; retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _update_lag(self) -> None:
        consumer = self.app.consumer
        try:
            assignment = consumer.assignment()
        except Exception:  # not assigned yet
            return
        for tp in assignment:
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: S112 - no fetch yet on this partition
                continue
            if highwater is None or highwater < 0:
                continue
            position = self.positions.get((tp.topic, tp.partition), -1)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position - 1)
            )


def create_app(
    settings: Settings,
    *,
    writer: FactWriter,
    datadir: Path,
    web_port: int | None = None,
    stages: pipeline.Stages | None = None,
    follow_state: bool = True,
    log_config: dict[str, Any] | None = None,
) -> StreamApp:
    """Build the worker app from settings; ``writer`` lands a batch of facts."""
    return StreamApp(
        settings,
        writer=writer,
        datadir=datadir,
        web_port=web_port,
        stages=stages,
        follow_state=follow_state,
        log_config=log_config,
    )

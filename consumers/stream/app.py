"""The faust app factory: the worker's hot path as a service, the metrics page, state feed.

``create_app(settings, writer=...)`` builds everything from one settings object; nothing
happens at import time. The records themselves do not go through faust agents: the per-event
path of faust/aiokafka capped a worker at about 1k records/s, so the hot path
(``consumers.stream.hot_path``) consumes ``slurm.jobcomp`` in batches with confluent-kafka,
runs the pure stages, writes through the warehouse sink and commits offsets only after the
database commit. faust runs it as a service on its own thread and serves ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from mode import Service

from consumers import pipeline
from consumers.kafka.config import faust_broker_settings
from consumers.kafka.follower import TopicFollower
from consumers.sink import FactWriter
from consumers.stream.hot_path import SINK_REJECTED, HotPath
from consumers.stream.metrics import StreamMetrics
from consumers.stream.state import LocalState
from jobcarbon.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["SINK_REJECTED", "HotPathService", "StreamApp", "create_app"]


class HotPathService(Service):
    """Runs ``HotPath.run`` on a thread for the app's life, after the state follower read
    the state topics to their end; stopping lets the batch in hand finish (or stay
    uncommitted), and a loop that dies crashes the worker."""

    def __init__(
        self, hot_path: HotPath, follower: TopicFollower | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.hot_path = hot_path
        self.follower = follower
        self._stop_loop = threading.Event()
        self._thread: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        ready = None
        if self.follower is not None:
            self.follower.start()
            ready = self.follower.caught_up
        self._thread = loop.run_in_executor(None, self.hot_path.run, self._stop_loop, ready)
        self.add_future(self._watch(self._thread))

    async def _watch(self, thread: asyncio.Future[None]) -> None:
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the hot path failed")
            await self.crash(exc)

    async def on_stop(self) -> None:
        self._stop_loop.set()
        if self._thread is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._thread), timeout=120)
        if self.follower is not None:
            self.follower.stop()


class StreamApp:
    """The faust app and what its services share (metrics, enrichment state)."""

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
        self.follower = (
            TopicFollower(kafka, [kafka.topic_intensity, kafka.topic_power], self.state.apply)
            if follow_state
            else None
        )
        self.hot_path = HotPath(
            settings, writer=writer, stages=self.stages, state=self.state, metrics=self.metrics
        )
        # faust's own group (its leader topic) must not be the hot path's consumer group.
        self.app = faust.App(
            f"{kafka.consumer_group}-faust",
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
        )

        async def metrics_view(view: Any, request: Any) -> Any:  # faust binds ``view``
            return await self.metrics_page(view, request)

        self.app.page("/metrics")(metrics_view)
        # A dependency starts with the app itself, not after faust's own group join and
        # table recovery (about 3 s on tansu): the two group joins overlap.
        self.app.add_dependency(HotPathService(self.hot_path, self.follower))

    async def metrics_page(self, web: Any, request: Any) -> Any:
        """``GET /metrics``: Prometheus text format (the hot path refreshes the lag)."""
        # aiohttp refuses parameters in content_type=; the full type goes in as a header.
        return web.bytes(
            self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
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

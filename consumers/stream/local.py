"""A local pipeline for the demo and the benchmark: the embedded broker and worker processes,
in a temporary directory, stopped cleanly (workers first, then the broker) on exit."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from consumers.kafka.admin import ensure_topics
from consumers.kafka.broker import free_port, local_broker, stop_process
from jobcarbon.settings import Settings


@dataclass
class LocalStack:
    """What ``local_stack`` started: settings pointing at it, worker processes, ports."""

    settings: Settings
    workdir: Path
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    metrics_ports: list[int] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """One more ``jobcarbon worker`` process sharing the partitions."""
        port = free_port()
        index = len(self.workers)
        log = (self.workdir / f"worker-{index}.log").open("wb")
        args = ["worker", "--web-port", str(port), "--no-migrate", "--loglevel", "warning"]
        process = subprocess.Popen(
            [sys.executable, "-m", "jobcarbon", *args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child keeps its own descriptor
        self.workers.append(process)
        self.metrics_ports.append(port)
        return process

    def check_workers(self) -> None:
        """Raise RuntimeError naming the log of a worker that exited."""
        for i, process in enumerate(self.workers):
            if process.poll() is not None:
                log = self.workdir / f"worker-{i}.log"
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker {i} exited with {process.returncode}:\n{tail}")


def _env(settings: Settings) -> dict[str, str]:
    kafka = settings.kafka
    return {
        "JOBCARBON_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "JOBCARBON_KAFKA__PARTITIONS": str(kafka.partitions),
        "JOBCARBON_KAFKA__CONSUMER_GROUP": kafka.consumer_group,
        "JOBCARBON_KAFKA__SINK_BATCH_MAX": str(kafka.sink_batch_max),
        "JOBCARBON_KAFKA__SINK_BATCH_WITHIN_S": str(kafka.sink_batch_within_s),
        "JOBCARBON_WAREHOUSE__URL": settings.warehouse.url,
        # Where each cluster's energy comes from (zone, site PUE): workers enrich with it.
        "JOBCARBON_CARBON__CLUSTERS": json.dumps(
            {name: c.model_dump(mode="json") for name, c in settings.carbon.clusters.items()}
        ),
        "JOBCARBON_CARBON__SITES": json.dumps(
            {name: s.model_dump(mode="json") for name, s in settings.carbon.sites.items()}
        ),
        **_accounting_env(settings),
    }


def _accounting_env(settings: Settings) -> dict[str, str]:
    """The slurmdbd database the workers reconcile with, when one is configured."""
    accounting = settings.accounting
    if not accounting.url:
        return {}
    return {
        "JOBCARBON_ACCOUNTING__URL": accounting.url,
        "JOBCARBON_ACCOUNTING__SETTLE_SECONDS": str(accounting.settle_seconds),
        "JOBCARBON_ACCOUNTING__BACKOFF_BASE_S": str(accounting.backoff_base_s),
        "JOBCARBON_ACCOUNTING__BACKOFF_CAP_S": str(accounting.backoff_cap_s),
    }


@contextlib.contextmanager
def local_stack(
    settings: Settings, *, workers: int = 1, warehouse_url: str | None = None
) -> Iterator[LocalStack]:
    """Broker (in memory) + topics + migrated warehouse + ``workers`` worker processes.

    ``warehouse_url`` defaults to a SQLite file in the temporary directory."""
    from warehouse import migrate
    from warehouse.engine import make_engine

    with tempfile.TemporaryDirectory(prefix="jobcarbon-local-") as tmp:
        workdir = Path(tmp)
        with (
            (workdir / "broker.log").open("wb") as broker_log,
            local_broker(log=broker_log) as address,
        ):
            url = warehouse_url or f"sqlite:///{workdir / 'warehouse.db'}"
            settings = settings.model_copy(
                update={
                    "kafka": settings.kafka.model_copy(update={"bootstrap_servers": address}),
                    "warehouse": settings.warehouse.model_copy(update={"url": url}),
                }
            )
            ensure_topics(settings.kafka)
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            stack = LocalStack(settings, workdir, _env(settings))
            try:
                for _ in range(workers):
                    stack.start_worker()
                yield stack
            finally:
                for process in stack.workers:
                    stop_process(process, timeout_s=20)

"""Stop the PostgreSQL warehouse mid-stream, start it again: workers retry the batch they
hold (never skip it), and the warehouse ends up equal to the source, nothing lost or doubled."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcarbon.settings import KafkaSettings
from tests.consumers.stream.harness import PacedProducer, Worker, fact_count, wait_for
from tests.faults.stack import (
    SCALES,
    Scale,
    assert_dlq_exact,
    assert_warehouse_exact,
    fault_stream,
    worker_env,
)
from tests.services.postgres import PostgresServer, restart_server, start_server, stop_server
from warehouse import migrate
from warehouse.engine import make_engine

pytestmark = [
    pytest.mark.fault,
    pytest.mark.broker,
    pytest.mark.postgres,
    pytest.mark.timeout(7200),
]

SEED = 303


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (the test crashes it), durable as in production:
    with synchronous commit off a crash would drop commits the workers were told were made,
    and they would rightly have moved their offsets past them."""
    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-pg-outage-"))
    server = start_server(tmp, durable=True)
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("scale", SCALES)
def test_warehouse_down_mid_stream_then_back_loses_and_doubles_nothing(
    scale: Scale,
    kafka: KafkaSettings,
    kafka_env: dict[str, str],
    workers: list[Worker],
    tmp_path: Path,
    own_postgres: PostgresServer,
) -> None:
    own_postgres.admin_execute('CREATE DATABASE "warehouse"')
    url = own_postgres.url("warehouse")
    engine = make_engine(url)
    migrate.upgrade(engine)
    stream = fault_stream(scale, SEED, tmp_path)
    n_expected = stream.n_expected
    paced = PacedProducer(kafka, stream.messages, scale.produce_s)
    workers += [Worker(worker_env(kafka_env), url, tmp_path, f"w{i}") for i in range(2)]

    wait_for(lambda: fact_count(engine) >= n_expected // 5, scale.timeout_s, "the first facts")
    engine.dispose()
    stop_server(own_postgres)  # immediate: connections cut mid-transaction
    time.sleep(scale.outage_s)
    assert all(w.process.poll() is None for w in workers), "a worker died with the warehouse"
    retries = sum(w.counter("jobcarbon_sink_retries_total") for w in workers)
    restart_server(own_postgres)

    assert retries > 0, "no worker tried to write during the outage; lower the rate"
    paced.result()
    wait_for(lambda: fact_count(engine) >= n_expected, scale.timeout_s, f"{n_expected} facts")
    assert_warehouse_exact(engine, stream.expected)
    assert_dlq_exact(kafka, stream.bad, redelivered=False)
    engine.dispose()

"""Stream workers against a real tansu broker and the real warehouse sink (SQLite).

Each test runs real ``jobcarbon worker`` processes; expected totals come from loading the
same records through the pure functions and ``write_facts`` directly (no broker)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from consumers.kafka.admin import ensure_topics
from consumers.kafka.producer import Producer
from consumers.kafka.reader import read_topic
from consumers.kafka.serializers import DLQ_REASON_HEADER, DLQ_SOURCE_HEADER
from jobcarbon.settings import KafkaSettings, load_settings
from tests.consumers.stream.harness import (
    PacedProducer,
    Worker,
    adversarial_bad,
    adversarial_good,
    expected_warehouse,
    fact_count,
    migrated_sqlite,
    synth_messages,
    totals,
    wait_for,
)
from warehouse import migrate
from warehouse.engine import make_engine

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]


@pytest.fixture
def kafka(kafka_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    for name, value in kafka_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings().kafka
    ensure_topics(settings)
    return settings


@pytest.fixture
def workers(kafka_env: dict[str, str], tmp_path: Path) -> Iterator[list[Worker]]:
    """Started workers, stopped (and their logs shown on failure) at teardown."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def produce(kafka: KafkaSettings, messages: list[tuple[bytes | None, bytes, object]]) -> None:
    producer = Producer(kafka)
    for key, value, headers in messages:
        producer.produce(kafka.topic_jobcomp, value, key=key, headers=headers)  # type: ignore[arg-type]
    assert producer.flush().delivered == len(messages)


def test_records_in_rows_out_bad_records_dead_lettered(
    kafka: KafkaSettings, kafka_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    good = synth_messages(300, seed=11) + [(None, v, None) for v in adversarial_good(11)]
    bad = adversarial_bad(11)
    produce(kafka, good[:150] + [(None, v, None) for v, _ in bad] + good[150:])
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    expected = expected_warehouse([v for _, v, _ in good], tmp_path / "expected.db")
    n_expected = fact_count(expected)
    assert n_expected > 250  # start events and duplicates aside, most jobs land

    workers.append(Worker(kafka_env, url, tmp_path, "w1"))
    wait_for(lambda: fact_count(engine) >= n_expected, 90, f"{n_expected} facts")

    assert totals(engine) == totals(expected)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM dim_user")).scalars())
    assert "o'brien'; DROP TABLE fact_job;--" in names  # bound parameters: stored verbatim
    assert "us\u00e9r\tta\u0007b" in names

    dead = read_topic(kafka, kafka.topic_dlq, expect=len(bad), timeout_s=30)
    got = sorted((r.value, r.headers[DLQ_REASON_HEADER].decode()) for r in dead)
    assert got == sorted(bad)  # every bad record, its reason, its original bytes
    assert all(r.headers[DLQ_SOURCE_HEADER].startswith(kafka.topic_jobcomp.encode()) for r in dead)

    w = workers[0]
    assert w.counter("jobcarbon_records_in_total", stage="ingest") == len(good) + len(bad)
    assert w.counter("jobcarbon_records_dead_lettered_total", stage="ingest", reason="empty") == 1
    assert "jobcarbon_consumer_lag" in w.metrics()
    # The loop's own steps are timed beside the two stages (which thread sets the pace).
    for stage in ("consume", "ingest", "prepare", "wait_write", "sink"):
        assert w.counter("jobcarbon_stage_batch_seconds_count", stage=stage) > 0, stage


def test_duplicates_and_redeliveries_do_not_double_count(
    kafka: KafkaSettings, kafka_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    messages = synth_messages(200, seed=12)
    produce(kafka, messages + messages[:80])  # Slurm resends
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    expected = expected_warehouse([v for _, v, _ in messages], tmp_path / "expected.db")
    workers.append(Worker(kafka_env, url, tmp_path, "w1"))
    wait_for(lambda: fact_count(engine) >= fact_count(expected), 90, "all facts")
    wait_for(lambda: workers[0].counter("jobcarbon_records_in_total", stage="sink") >= 280, 30, "")
    workers[0].stop()
    first = totals(engine)
    assert first == totals(expected)

    # A new consumer group re-reads everything: a full re-delivery.
    again = {**kafka_env, "JOBCARBON_KAFKA__CONSUMER_GROUP": kafka.consumer_group + "-again"}
    workers.append(Worker(again, url, tmp_path, "w2"))
    wait_for(
        lambda: workers[1].counter("jobcarbon_records_in_total", stage="sink") >= 280, 90, "replay"
    )
    assert totals(engine) == first


def test_two_workers_share_partitions_and_totals_stay_exact(
    kafka: KafkaSettings, kafka_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    workers.append(Worker(kafka_env, url, tmp_path, "w1"))
    workers.append(Worker(kafka_env, url, tmp_path, "w2"))
    messages = synth_messages(600, seed=13)
    wait_for(lambda: all(_ready(w) for w in workers), 60, "both workers serving metrics")
    produce(kafka, messages)
    expected = expected_warehouse([v for _, v, _ in messages], tmp_path / "expected.db")
    wait_for(lambda: fact_count(engine) >= fact_count(expected), 120, "all facts")
    assert totals(engine) == totals(expected)
    shares = [w.counter("jobcarbon_records_in_total", stage="ingest") for w in workers]
    assert sum(shares) >= len(messages)
    assert all(share > 0 for share in shares), f"partitions not shared: {shares}"


def test_worker_killed_mid_stream_resumes_without_loss_or_duplication(
    kafka: KafkaSettings, kafka_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    messages = synth_messages(1500, seed=14)
    paced = PacedProducer(kafka, messages, 15.0)  # sent while the worker runs and dies
    url = migrated_sqlite(tmp_path / "stream.db")
    engine = make_engine(url)
    expected = expected_warehouse([v for _, v, _ in messages], tmp_path / "expected.db")
    n_expected = fact_count(expected)
    workers.append(Worker(kafka_env, url, tmp_path, "w1"))
    wait_for(lambda: fact_count(engine) > 100, 90, "the first facts")
    workers[0].stop(signal.SIGKILL)  # no goodbye: uncommitted offsets are replayed
    landed = fact_count(engine)
    assert landed < n_expected, "the worker finished before it was killed; raise the volume"

    workers.append(Worker(kafka_env, url, tmp_path, "w2"))
    paced.result()
    wait_for(lambda: fact_count(engine) >= n_expected, 120, f"{n_expected} facts")
    assert totals(engine) == totals(expected)


def _ready(worker: Worker) -> bool:
    try:
        worker.metrics()
    except OSError:
        return False
    return True


@pytest.mark.postgres
def test_two_workers_land_exact_totals_in_postgresql(
    kafka: KafkaSettings,
    kafka_env: dict[str, str],
    workers: list[Worker],
    tmp_path: Path,
    pg_database: str,
) -> None:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    messages = synth_messages(400, seed=15)
    produce(kafka, messages + messages[:50])
    expected = expected_warehouse([v for _, v, _ in messages], tmp_path / "expected.db")
    workers.append(Worker(kafka_env, pg_database, tmp_path, "w1"))
    workers.append(Worker(kafka_env, pg_database, tmp_path, "w2"))
    wait_for(lambda: fact_count(engine) >= fact_count(expected), 120, "all facts")
    wait_for(
        lambda: (
            sum(w.counter("jobcarbon_records_in_total", stage="sink") for w in workers)
            >= len(messages) + 50
        ),
        60,
        "the resent records",
    )
    assert totals(engine) == totals(expected)

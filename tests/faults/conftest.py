"""Fixtures of the fault-injection suites: settings for the test's own topics, and worker
processes that are stopped at teardown whatever happened (their logs shown on failure)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.kafka.admin import ensure_topics
from jobcarbon.settings import KafkaSettings, load_settings
from tests.consumers.stream.harness import Worker


@pytest.fixture
def kafka(kafka_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """Kafka settings of this test's topics on the session broker (topics created)."""
    for name, value in kafka_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings().kafka
    ensure_topics(settings)
    return settings


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> Iterator[list[Worker]]:
    """Workers the test starts; every one still running is stopped at teardown."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for worker in started:
            print(f"--- {worker.log_path.name} ---\n{worker.log_text()[-3000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def log_dir(tmp_path: Path) -> Path:
    """Where worker logs go (the test's temp dir)."""
    return tmp_path

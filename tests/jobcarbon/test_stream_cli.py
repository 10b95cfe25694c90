"""The stream CLI shells: replay (to a real broker) and backfill (straight to the warehouse)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from consumers.kafka.reader import read_topic
from jobcarbon.settings import KafkaSettings
from tests.consumers.stream.harness import adversarial_bad, expected_warehouse, totals
from warehouse.engine import make_engine


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jobcarbon", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


@pytest.mark.broker
def test_replay_synth_sends_patched_records_with_key_and_headers(
    kafka_env: dict[str, str],
) -> None:
    proc = run("replay", "--synth", "120", "--seed", "5", env=kafka_env)
    assert proc.returncode == 0, proc.stderr
    assert b"120 of 120 record(s) delivered" in proc.stderr
    kafka = KafkaSettings(
        bootstrap_servers=kafka_env["JOBCARBON_KAFKA__BOOTSTRAP_SERVERS"],
        topic_jobcomp=kafka_env["JOBCARBON_KAFKA__TOPIC_JOBCOMP"],
    )
    records = read_topic(kafka, kafka.topic_jobcomp, expect=120)
    assert len(records) == 120
    keyed = [r for r in records if r.key is not None]
    assert keyed and all(r.headers.get("jobcarbon-schema") == b"1" for r in keyed)
    assert any(r.key is None and not r.headers for r in records)  # upstream: no key


def test_backfill_loads_history_rejects_bad_lines_and_is_repeatable(tmp_path: Path) -> None:
    history = run("synth", "--jobs", "400", "--seed", "9", "--slurm-version", "mix").stdout
    bad = adversarial_bad(9)
    lines = history.rstrip(b"\n").split(b"\n")
    # A bad record cannot hold a newline in a line-oriented file; the rest go in as they are.
    bad_lines = [v for v, _ in bad if b"\n" not in v and v]
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(lines[:200] + bad_lines + lines[200:]) + b"\n")
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    env = {"JOBCARBON_WAREHOUSE__URL": url}
    rejects = tmp_path / "rejects.jsonl"

    proc = run("backfill", str(path), "--rejects", str(rejects), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    got = sorted(orjson.loads(line)["reason"] for line in rejects.read_bytes().splitlines())
    assert got == sorted(reason for v, reason in bad if v in bad_lines)
    expected = expected_warehouse(lines, tmp_path / "expected.db")
    engine = make_engine(url)
    first = totals(engine)
    assert first == totals(expected)

    proc = run("backfill", str(path), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    # Nothing new: re-enriched facts may be rewritten (new computed_at), never added.
    assert b"inserted 0," in proc.stderr and b"rejected 0;" in proc.stderr
    assert totals(engine) == first
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fact_job")).scalar_one() == 400

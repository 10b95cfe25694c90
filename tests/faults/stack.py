"""What every fault-injection test shares: its scale, the stream it produces (good records
with the bad ones mixed in at random places), and the closing check that the warehouse and
the DLQ hold exactly what the source says.

One code path serves both variants: ``CI`` (a few thousand records, a few faults: the
default ``make test`` run) and ``FULL`` (the issue's sizes: 100k records, ten kills, a 30 s
outage; ``@pytest.mark.slow``, run by ``make test-slow``). ``JOBCARBON_FAULT_RECORDS`` and
``JOBCARBON_FAULT_KILLS`` override the full variant's sizes for a one-off run.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from consumers.kafka.producer import Producer
from consumers.kafka.reader import read_topic
from consumers.kafka.serializers import DLQ_REASON_HEADER
from jobcarbon.settings import KafkaSettings, Settings
from jobcarbon.synth import generate_jobs, record_dict
from tests.consumers.stream.harness import (
    Message,
    adversarial_bad,
    adversarial_good,
    expected_warehouse,
    fact_count,
    synth_messages,
    totals,
)
from tests.warehouse.checks import (
    ROLLUPS,
    assert_rollups_equal_fact_sums,
    assert_same_rollups,
    rollup_snapshot,
)


@dataclass(frozen=True)
class Scale:
    """How hard one variant pushes: records produced, faults injected, outage length."""

    name: str
    records: int
    kills: int
    outage_s: float
    timeout_s: float  # for the stream to drain after the last fault
    #: The stream is produced over this long (``PacedProducer``), so every fault falls
    #: mid-stream even when the workers drain a backlog faster than a fault can be set up.
    produce_s: float


CI = Scale("ci", records=2500, kills=3, outage_s=8.0, timeout_s=240.0, produce_s=25.0)
FULL = Scale(
    "full",
    records=int(os.environ.get("JOBCARBON_FAULT_RECORDS", "100000")),
    kills=int(os.environ.get("JOBCARBON_FAULT_KILLS", "10")),
    outage_s=30.0,
    timeout_s=3600.0,
    produce_s=90.0,
)
#: Parametrize a fault test with this: the CI variant, and the full one behind ``slow``.
SCALES = [pytest.param(CI, id="ci"), pytest.param(FULL, id="full", marks=pytest.mark.slow)]


#: The record size limit the fault suites give the workers (an oversized record must still
#: fit through the broker and the DLQ, whose limits are 1 MB).
MAX_RECORD_BYTES = 64 * 1024


def bad_records(seed: int, copies: int = 1) -> list[tuple[bytes, str]]:
    """(original bytes, reason) of records that must be dead-lettered: the stream tests' set
    (empty, invalid JSON, invalid UTF-8, not an object, missing field, a job id of 10^30,
    SQL in the job id, NUL in a string) plus corrupt, adversarial and oversized ones;
    ``copies`` variants of each (distinct bytes)."""
    job = generate_jobs(1, seed)[0]
    base = record_dict(job, "24.11")
    out: list[tuple[bytes, str]] = []
    for i in range(copies):
        doc = dict(base, jobid=800_000_000 + i)
        out += adversarial_bad(seed + i) if i else adversarial_bad(seed)
        out += [
            (b'{"jobid": %d\x01\x02\x1b[2J}' % i, "invalid_json"),  # control characters
            (b'{"jobid": "\xc0\xaf%d"}' % i, "undecodable"),  # overlong UTF-8
            (b'{"jobid": %d, "username": "\\ud800"}' % i, "invalid_json"),  # lone surrogate
            (b"[" * 5000 + b"]" * 5000 + b"%d" % i, "invalid_json"),  # nesting bomb
            (json.dumps(doc).replace('"jobid": ', '"jobid": 1e400, "j": ').encode(),
             "invalid_field"),  # a number too big for a double
            (orjson.dumps(dict(doc, jobid=-1 - i)), "invalid_field"),
            (orjson.dumps(dict(doc, cluster="c'; DROP TABLE fact_job;--\u0000")), "nul_in_string"),
            (orjson.dumps(dict(doc, job_name="x" * MAX_RECORD_BYTES)), "oversized"),
        ]  # fmt: skip
    return out


def hostile_good(seed: int, cluster: str | None = None) -> list[bytes]:
    """``adversarial_good``: valid records with hostile strings (of ``cluster`` if given)."""
    values = adversarial_good(seed)
    if cluster is None:
        return values
    return [orjson.dumps(dict(orjson.loads(v), cluster=cluster)) for v in values]


def mixed_stream(
    good: list[Message], bad: list[tuple[bytes, str]], seed: int, cluster: str | None = None
) -> list[Message]:
    """``good`` in order plus ``hostile_good`` records (which must land verbatim), with each
    bad record inserted at a random place."""
    rng = random.Random(seed)
    out = list(good) + [(None, v, None) for v in hostile_good(seed, cluster)]
    for value, _reason in bad:
        out.insert(rng.randrange(len(out) + 1), (None, value, None))
    return out


def good_values(good: list[Message], seed: int, cluster: str | None = None) -> list[bytes]:
    """Every value ``mixed_stream`` produces that must land (for the expected warehouse)."""
    return [v for _, v, _ in good] + hostile_good(seed, cluster)


@dataclass(frozen=True)
class FaultStream:
    """One fault test's stream and the warehouse it must end up equal to."""

    bad: list[tuple[bytes, str]]
    #: The synthetic jobs' records, hostile good ones and ``bad``, mixed (``mixed_stream``).
    messages: list[Message]
    #: The same good records loaded through the pure functions, no broker in between.
    expected: Engine
    n_expected: int


def fault_stream(
    scale: Scale,
    seed: int,
    tmp_path: Path,
    *,
    bad_copies: int = 1,
    cluster: str | None = None,
    settings: Settings | None = None,
) -> FaultStream:
    """``scale.records`` synthetic jobs with ``bad_records`` mixed in, and the expected
    warehouse of their good records (built in ``tmp_path``, stages from ``settings``)."""
    good = synth_messages(scale.records, seed=seed, **({"cluster": cluster} if cluster else {}))
    bad = bad_records(seed, copies=bad_copies)
    expected = expected_warehouse(
        good_values(good, seed, cluster), tmp_path / "expected.db", settings
    )
    return FaultStream(bad, mixed_stream(good, bad, seed, cluster), expected, fact_count(expected))


def produce(kafka: KafkaSettings, messages: list[Message]) -> None:
    """Produce every message to the jobcomp topic and wait until all are delivered."""
    producer = Producer(kafka)
    for key, value, headers in messages:
        producer.produce(kafka.topic_jobcomp, value, key=key, headers=headers)  # type: ignore[arg-type]
    assert producer.flush().delivered == len(messages)


def unsettled(engine: Engine) -> int:
    """Facts whose reconciliation is still open (``not_checked`` or ``unreconciled``)."""
    sql = "SELECT count(*) FROM fact_job WHERE reconcile_status IN ('not_checked', 'unreconciled')"
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def assert_warehouse_exact(engine: Engine, expected: Engine) -> None:
    """Facts and roll-ups equal the source exactly: job counts, energy and CO2e sums and
    per-user totals as the pure path gives them; every roll-up equal to the expected one
    and to the SQL sum over the facts."""
    assert totals(engine) == totals(expected)
    assert_rollups_equal_fact_sums(engine)
    for table in ROLLUPS:
        assert_same_rollups(rollup_snapshot(engine, table), rollup_snapshot(expected, table))


def assert_dlq_exact(
    kafka: KafkaSettings, bad: list[tuple[bytes, str]], *, redelivered: bool
) -> None:
    """The DLQ holds exactly the bad records, each with its reason and original bytes.

    Delivery is at least once: after a kill -9 or a broker restart a record whose offset was
    not committed yet is processed again, so the same bad record may be dead-lettered twice
    (``redelivered``). Then the *set* must match exactly and nothing else may be there;
    without faults in the ingest path the list matches one for one."""
    dead = read_topic(kafka, kafka.topic_dlq, expect=None, timeout_s=30)
    got = [(r.value, r.headers[DLQ_REASON_HEADER].decode()) for r in dead]
    if redelivered:
        assert set(got) == set(bad), _dlq_diff(got, bad)
    else:
        assert sorted(got) == sorted(bad), _dlq_diff(got, bad)


def _dlq_diff(got: list[tuple[bytes, str]], bad: list[tuple[bytes, str]]) -> dict[str, Any]:
    return {
        "unexpected": [(v[:80], r) for v, r in set(got) - set(bad)],
        "missing": [(v[:80], r) for v, r in set(bad) - set(got)],
        "count": (len(got), len(bad)),
    }


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """Worker environment for the fault suites: ``env`` plus the record size limit."""
    return {**env, "JOBCARBON_KAFKA__MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)}

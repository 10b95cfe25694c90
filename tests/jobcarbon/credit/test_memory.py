"""The in-process credit store on a real PostgreSQL warehouse: the same usage and the same
predictions as the SQL store, ledger writes visible to the next check in another worker
(two stores sharing one generation file), facts landing visible after a refresh."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.credit_load import fact_values, insert_facts, load
from jobcarbon.credit.memory import Generation, MemoryCreditStore
from jobcarbon.credit.policy import period_bounds, previous_period_start
from jobcarbon.credit.predict import HISTORY_LIMIT, JobRequest
from jobcarbon.credit.sql import SqlCreditStore
from jobcarbon.credit.store import UsageQuery
from jobcarbon.synth import generate_jobs
from warehouse import migrate
from warehouse.engine import make_engine

pytestmark = pytest.mark.postgres

JOBS = generate_jobs(3000, seed=8)
NOW = max(j.end for j in JOBS) + timedelta(hours=1)
CLUSTER = JOBS[0].cluster


@pytest.fixture(scope="module")
def loaded(pg_module_database: str) -> Iterator[tuple[Engine, dict]]:
    engine = make_engine(pg_module_database)
    migrate.upgrade(engine)
    ids = load(engine, JOBS)
    yield engine, ids
    engine.dispose()


def memory(engine: Engine, generation: Generation | None = None) -> MemoryCreditStore:
    return MemoryCreditStore(
        SqlCreditStore(engine, cluster=CLUSTER),
        clock=lambda: NOW,
        past_window_days=lambda: 28,
        generation=generation,
        background=False,
    )


def query(user: str, account: str, period: str = "quarter", carry: bool = True) -> UsageQuery:
    start, _ = period_bounds(period, NOW)
    return UsageQuery(user, account, NOW, NOW - timedelta(days=28), start,
                      previous_period_start(period, NOW) if carry else None, False,
                      NOW - timedelta(days=7))  # fmt: skip


def test_same_usage_as_the_warehouse(loaded: tuple[Engine, dict]) -> None:
    engine, _ = loaded
    sql, mem = SqlCreditStore(engine, cluster=CLUSTER), memory(engine)
    rng = random.Random(1)
    for job in rng.sample(JOBS, 150):
        for period in ("month", "quarter", "year"):
            q = query(job.user.name, job.account, period, carry=rng.random() < 0.5)
            want, got = sql.usage(q), mem.usage(q)
            for field in dataclasses.fields(want):
                a, b = getattr(want, field.name), getattr(got, field.name)
                assert (a is None) == (b is None), field.name
                if a is not None:
                    assert b == pytest.approx(a, rel=1e-12, abs=1e-9), field.name


def test_same_predictions_as_the_warehouse(loaded: tuple[Engine, dict]) -> None:
    engine, _ = loaded
    sql, mem = SqlCreditStore(engine, cluster=CLUSTER), memory(engine)
    rng = random.Random(2)
    levels = set()
    for job in rng.sample(JOBS, 300):
        other = rng.choice(JOBS)
        request = JobRequest(
            user=job.user.name if rng.random() < 0.8 else "nobody-here",
            account=job.account if rng.random() < 0.8 else other.account,
            partition=job.partition,
            nodes=max(1, len(job.nodes)) + rng.randrange(3),
            cpus=job.cpus,
            gpus=job.gpus,
            time_limit_s=rng.choice([job.time_limit_s, 3600, 86_400]),
            job_name=job.job_name if rng.random() < 0.7 else "other",
        )
        want = sql.predict(request, 100)
        assert mem.predict(request, 100) == want  # bit for bit
        levels.add(want.level)
        # The same user, account, partition and name again, another size: the index's
        # kept similar jobs, scaled, equal the warehouse's prediction too.
        other_size = dataclasses.replace(
            request, nodes=request.nodes + 3, cpus=request.cpus * 2 + 1, time_limit_s=7_200
        )
        assert mem.predict(other_size, 100) == sql.predict(other_size, 100)
    assert {"user+name", "user+partition"} <= levels
    nowhere = dataclasses.replace(request, partition="no-such-partition")
    assert mem.predict(nowhere, 100) == sql.predict(nowhere, 100)


def test_another_history_limit_is_the_warehouses(loaded: tuple[Engine, dict]) -> None:
    """The index holds each group's HISTORY_LIMIT most recent jobs; a prediction over
    another limit is the SQL store's."""
    engine, _ = loaded
    sql, mem = SqlCreditStore(engine, cluster=CLUSTER), memory(engine)
    differs = 0
    for job in JOBS[:40]:
        request = JobRequest(job.user.name, job.account, job.partition, 1, job.cpus, 0,
                             3600, job.job_name)  # fmt: skip
        assert mem.predict(request, 3) == sql.predict(request, 3)
        differs += mem.predict(request, 3) != mem.predict(request, HISTORY_LIMIT)
    assert differs  # the limit matters for some: the comparison above can fail


def test_writes_are_visible_to_the_next_check_in_another_worker(
    loaded: tuple[Engine, dict], tmp_path: Path
) -> None:
    engine, ids = loaded
    shared = str(tmp_path / "generation")
    a, b = memory(engine, Generation(shared)), memory(engine, Generation(shared))
    job = JOBS[20]
    q = query(job.user.name, job.account)
    base = b.usage(q)
    a.reserve(user=job.user.name, account=job.account, cluster=CLUSTER, job_id=8_000_001,
              co2e_g=321.0, now=NOW, actor="t")  # fmt: skip
    held = b.usage(q)  # the other worker, no refresh in between
    assert held.running_co2e_g == pytest.approx(base.running_co2e_g + 321.0)
    assert held.period_used_g == pytest.approx(base.period_used_g + 321.0)
    a.adjust(account=job.account, user=None, amount_g=-21.0, note="t", now=NOW, actor="t")
    assert b.usage(q).period_used_g == pytest.approx(base.period_used_g + 300.0)

    # The job lands: counted by the roll-ups after a refresh, never twice.
    run = {"start": NOW - timedelta(minutes=30), "end": NOW - timedelta(minutes=1)}
    landed = dataclasses.replace(job, job_id=8_000_001, submit=NOW + timedelta(seconds=5), **run)
    insert_facts(engine, [fact_values(landed, 10**9, ids)])
    b.refresh()
    after = b.usage(q)
    assert after.running_co2e_g == pytest.approx(base.running_co2e_g)
    assert a.sweep(now=NOW, stale_before=NOW - timedelta(days=7), actor="t") == (1, 0)
    assert b.usage(q).running_co2e_g == pytest.approx(base.running_co2e_g)
    assert b.usage(q) == after  # settling changes no number


def test_injection_strings_are_just_unknown_names(loaded: tuple[Engine, dict]) -> None:
    mem = memory(loaded[0])
    evil = "x'; DROP TABLE fact_job; --"
    u = mem.usage(query(evil, evil))
    assert (u.past_co2e_g, u.running_co2e_g, u.period_used_g) == (0.0, 0.0, 0.0)
    p = mem.predict(JobRequest(evil, evil, evil, 1, 1, 0, 60, evil), 100)
    assert p.level == "default"


def test_starts_without_the_warehouse_and_loads_later(
    loaded: tuple[Engine, dict], caplog: pytest.LogCaptureFixture
) -> None:
    engine, _ = loaded
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")  # nothing listens
    store = memory(down)  # does not raise: checks go to the warehouse until loaded
    assert "credit state not loaded" in caplog.text
    assert store._rollups is None and store._history is None
    store.sql = SqlCreditStore(engine, cluster=CLUSTER)  # the warehouse is back
    store.refresh()
    job = JOBS[0]
    q = query(job.user.name, job.account)
    assert store._rollups is not None and store._history is not None
    assert store.usage(q) == memory(engine).usage(q)

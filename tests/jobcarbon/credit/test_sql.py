"""The credit store on a real PostgreSQL warehouse: roll-up usage equals naive sums over the
facts, reservations are idempotent, settled when the job lands, released when stale, and the
ledger stays append-only."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bench.credit_load import fact_values, insert_facts, load
from jobcarbon.credit.sql import SqlCreditStore
from jobcarbon.credit.store import UsageQuery
from jobcarbon.synth import SynthJob, generate_jobs
from warehouse import migrate
from warehouse.engine import make_engine

pytestmark = pytest.mark.postgres

JOBS = generate_jobs(3000, seed=3)
NOW = max(j.end for j in JOBS) + timedelta(hours=1)
CLUSTER = JOBS[0].cluster


@pytest.fixture(scope="module")
def loaded(pg_module_database: str) -> Iterator[tuple[Engine, dict]]:
    engine = make_engine(pg_module_database)
    migrate.upgrade(engine)
    ids = load(engine, JOBS)
    yield engine, ids
    engine.dispose()


@pytest.fixture
def store(loaded: tuple[Engine, dict]) -> SqlCreditStore:
    return SqlCreditStore(loaded[0], cluster=CLUSTER)


def _co2e(job: SynthJob) -> float:
    return fact_values(job, 0, _FAKE_IDS)[31] or 0.0


class _Ids(dict):  # any key -> 1: fact_values only needs ids to build the tuple
    def __getitem__(self, key: object) -> dict:
        return _AnyId()


class _AnyId(dict):
    def __getitem__(self, key: object) -> int:
        return 1


_FAKE_IDS = _Ids()


def _share_after(job: SynthJob, boundary: datetime) -> float:
    """Share of a job's run after ``boundary`` (the warehouse apportioning rule)."""
    if job.start is None or job.end <= job.start:
        return 1.0 if job.end >= boundary else 0.0  # anchored at its end
    run = (job.end - job.start).total_seconds()
    after = (job.end - max(job.start, boundary)).total_seconds()
    return min(1.0, max(0.0, after / run))


def query(
    user: str,
    account: str,
    *,
    past_days: int = 10_000,
    period_start: datetime,
    prev: datetime | None = None,
    scope_user: bool = False,
) -> UsageQuery:
    day = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC)
    return UsageQuery(
        user,
        account,
        NOW,
        day - timedelta(days=past_days),
        period_start,
        prev,
        scope_user,
        NOW - timedelta(days=7),
    )


def test_usage_matches_naive_sums(store: SqlCreditStore) -> None:
    user = JOBS[0].user
    boundary = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC) - timedelta(days=3)
    usage = store.usage(
        query(user.name, user.account, period_start=boundary, prev=boundary - timedelta(days=30))
    )
    mine = [j for j in JOBS if j.user.name == user.name]
    assert usage.past_co2e_g == pytest.approx(sum(_co2e(j) for j in mine), rel=1e-9)
    account = [j for j in JOBS if j.account == user.account]
    naive = sum(_co2e(j) * _share_after(j, boundary) for j in account)
    assert naive > 0
    assert usage.period_used_g == pytest.approx(naive, rel=1e-9)
    assert usage.running_co2e_g == 0.0
    assert usage.previous_period_used_g is not None


def test_user_scope_and_adjustments(store: SqlCreditStore) -> None:
    user = JOBS[5].user
    start = datetime(2000, 1, 1, tzinfo=UTC)
    before = store.usage(query(user.name, user.account, period_start=start, scope_user=True))
    mine = [j for j in JOBS if j.user.name == user.name and j.account == user.account]
    assert before.period_used_g == pytest.approx(sum(_co2e(j) for j in mine), rel=1e-9)
    store.adjust(
        account=user.account,
        user=user.name,
        amount_g=-500.0,
        note="refund",
        now=NOW - timedelta(minutes=1),
        actor="admin",
    )
    after = store.usage(query(user.name, user.account, period_start=start, scope_user=True))
    assert after.period_used_g == pytest.approx(before.period_used_g - 500.0)


def test_reservation_lifecycle(loaded: tuple[Engine, dict], store: SqlCreditStore) -> None:
    engine, ids = loaded
    job = JOBS[10]
    user, account = job.user.name, job.account
    period = datetime(2000, 1, 1, tzinfo=UTC)
    base = store.usage(query(user, account, period_start=period))
    rid, created = store.reserve(
        user=user,
        account=account,
        cluster=CLUSTER,
        job_id=9_000_001,
        co2e_g=1234.5,
        now=NOW,
        actor=user,
    )
    assert created
    again, created_again = store.reserve(
        user=user,
        account=account,
        cluster=CLUSTER,
        job_id=9_000_001,
        co2e_g=1.0,
        now=NOW,
        actor=user,
    )
    assert (again, created_again) == (rid, False)  # a retried post-submit appends nothing
    held = store.usage(query(user, account, period_start=period))
    assert held.running_co2e_g == pytest.approx(base.running_co2e_g + 1234.5)
    assert held.period_used_g == pytest.approx(base.period_used_g + 1234.5)

    # A stale reservation from long ago, never landed.
    stale, _ = store.reserve(
        user=user,
        account=account,
        cluster=CLUSTER,
        job_id=9_000_002,
        co2e_g=99.0,
        now=NOW - timedelta(days=30),
        actor=user,
    )

    # The job lands (the sink inserts its fact, submitted just after the reservation).
    landed = dataclasses.replace(job, job_id=9_000_001, submit=NOW + timedelta(seconds=5))
    insert_facts(engine, [fact_values(landed, 10**9, ids)])
    actual = fact_values(landed, 0, ids)[31]
    after = store.usage(query(user, account, period_start=period))
    assert after.running_co2e_g == pytest.approx(base.running_co2e_g)  # not counted twice

    settled, released = store.sweep(now=NOW, stale_before=NOW - timedelta(days=7), actor="t")
    assert (settled, released) == (1, 1)
    assert store.sweep(now=NOW, stale_before=NOW - timedelta(days=7), actor="t") == (0, 0)
    entries = {
        (e.entry_type, e.reservation_id): e
        for e in store.ledger(account=account, user=user, limit=50)
    }
    assert entries[("settlement", rid)].amount_g == pytest.approx(actual)
    assert entries[("release", stale)].amount_g == pytest.approx(-99.0)
    assert entries[("reservation", None)].actor == user

    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE credit_ledger SET amount_g = 0 WHERE id = :id"), {"id": rid})


def test_history_prefers_recent_and_own(store: SqlCreditStore) -> None:
    job = JOBS[-1]
    rows = store.history(job.user.name, job.account, job.partition, 50)
    assert rows and rows[0].user == job.user.name
    assert all(r.partition == job.partition and r.energy_it_j > 0 for r in rows)
    assert store.history(job.user.name, job.account, "no-such-partition", 50) == []


def test_uses_account_and_injection_strings(store: SqlCreditStore) -> None:
    job = JOBS[0]
    assert store.uses_account(job.user.name, job.account)
    other = next(j.account for j in JOBS if j.account != job.account)
    assert not store.uses_account(job.user.name, other)
    evil = "x' OR '1'='1"
    assert not store.uses_account(evil, evil)
    usage = store.usage(query(evil, evil, period_start=NOW))
    assert usage.past_co2e_g == 0 and usage.period_used_g == 0

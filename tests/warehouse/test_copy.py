"""The PostgreSQL COPY path lands exactly what the upsert path lands."""

from __future__ import annotations

import random
from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy import Engine

from schemas.fact import JobFact, Reconciliation, fact_from_record, with_energy
from tests.services.postgres import PostgresServer, fresh_database
from tests.warehouse import synthdata
from tests.warehouse.checks import (
    ROLLUPS,
    assert_rollups_equal_fact_sums,
    assert_same_rollups,
    fact_snapshot,
    rollup_snapshot,
)
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.indexes import SECONDARY_INDEXES
from warehouse.sink import copy_facts, deferred_indexes, write_facts

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def test_copy_equals_upsert_and_rollups_stay_exact(
    pg_engine: Engine, postgres_server: PostgresServer
) -> None:
    workload = synthdata.facts(4000, seed=13)
    # Part of the workload is already there (with raw, unreconciled facts), so the copy
    # meets existing keys and must move their roll-ups by the difference.
    write_facts(pg_engine, [fact_from_record(f.record) for f in workload[:1000]])
    rng = random.Random(5)
    batch = workload + rng.sample(workload, 400)
    rng.shuffle(batch)
    result = copy_facts(pg_engine, batch, chunk_size=1500)
    assert not result.rejected
    assert result.inserted == 3000 and result.duplicates == 400
    assert result.updated + result.unchanged == 1000
    assert_rollups_equal_fact_sums(pg_engine)

    with fresh_database(postgres_server) as url:
        reference = make_engine(url)
        migrate.upgrade(reference)
        write_facts(reference, workload)
        assert fact_snapshot(pg_engine) == fact_snapshot(reference)
        for table in ROLLUPS:
            assert_same_rollups(
                rollup_snapshot(pg_engine, table), rollup_snapshot(reference, table)
            )
        reference.dispose()
    # A second copy of the same facts changes nothing.
    before = {t: rollup_snapshot(pg_engine, t) for t in ROLLUPS}
    again = copy_facts(pg_engine, workload, chunk_size=2500)
    assert again.inserted == again.updated == 0 and again.unchanged == len(workload)
    assert {t: rollup_snapshot(pg_engine, t) for t in ROLLUPS} == before


def test_copy_chunk_with_a_refused_row_lands_the_rest(pg_engine: Engine) -> None:
    records = synthdata.records(300, seed=17)
    facts: list[JobFact] = [fact_from_record(r) for r in records]
    # A fact the sink accepts but the database refuses (a site's extra CHECK constraint).
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE fact_job ADD CONSTRAINT no_poison CHECK (job_name <> 'poison')"
        )
    facts[123] = fact_from_record(records[123].replace(job_name="poison"))
    filled = msgspec.structs.replace(
        with_energy(facts[5], 1000, "slurmdbd"), reconciliation=Reconciliation(status="match")
    )
    result = copy_facts(pg_engine, [*facts, filled], chunk_size=1000)
    assert result.inserted == 299 and len(result.rejected) == 1
    assert "no_poison" in result.rejected[0].reason
    assert str(records[123].job_id) in result.rejected[0].job
    assert_rollups_equal_fact_sums(pg_engine)


def test_copy_reports_like_the_upsert_path(
    pg_engine: Engine, postgres_server: PostgresServer
) -> None:
    """Repeated jobs are settled before the chunks are prepared (while an earlier chunk is
    being written): counts, rejections (in input order) and facts equal ``write_facts``."""
    records = synthdata.records(600, seed=23)
    facts: list[JobFact] = [fact_from_record(r) for r in records]
    final = msgspec.structs.replace(
        with_energy(facts[10], 2000, "slurmdbd"), reconciliation=Reconciliation(status="match")
    )
    # Outranks facts[20] but is invalid: facts[20] must land.
    broken = msgspec.structs.replace(
        facts[20],
        energy_it_j=None,
        energy_origin="slurmdbd",
        reconciliation=Reconciliation(status="match"),
    )
    batch = [
        *facts,
        facts[3],  # a replay in another chunk
        final,  # a correction in another chunk
        broken,
        fact_from_record(records[30].replace(event="start")),  # ignored
        fact_from_record(records[40].replace(cluster=None, job_id=999_999)),  # no cluster
        fact_from_record(records[50].replace(job_name="bad\x00name", job_id=999_998)),
    ]
    result = copy_facts(pg_engine, batch, chunk_size=150)
    with fresh_database(postgres_server) as url:
        reference = make_engine(url)
        migrate.upgrade(reference)
        expected = write_facts(reference, batch, batch_size=150)
        assert result == expected  # counts and the rejected jobs, in the same order
        assert fact_snapshot(pg_engine) == fact_snapshot(reference)
        reference.dispose()
    # The synthetic mix already repeats some jobs (energy_update after end).
    assert result.inserted == 600 and result.duplicates >= 2 and result.ignored == 1
    assert len(result.rejected) == 3 and "NUL" in result.rejected[2].reason
    assert_rollups_equal_fact_sums(pg_engine)


def _fact_job_indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'fact_job'")
        return {name for (name,) in rows}


def test_deferred_indexes_land_the_same_and_rebuild_every_index(
    pg_engine: Engine, postgres_server: PostgresServer
) -> None:
    """A backfill with the secondary indexes built afterwards lands exactly what the
    ordinary COPY lands; the indexes are back after it, also when the load fails, and
    ``db upgrade`` restores any that a dead load left missing."""
    indexes = _fact_job_indexes(pg_engine)
    assert {ix.name for ix in SECONDARY_INDEXES} <= indexes
    workload = synthdata.facts(3000, seed=19)
    with deferred_indexes(pg_engine):
        assert not _fact_job_indexes(pg_engine) & {ix.name for ix in SECONDARY_INDEXES}
        first = copy_facts(pg_engine, workload[:2000], chunk_size=700)
        second = copy_facts(pg_engine, workload[1000:], chunk_size=700)
    assert _fact_job_indexes(pg_engine) == indexes
    assert first.inserted + second.inserted == 3000 and second.unchanged == 1000
    assert_rollups_equal_fact_sums(pg_engine)
    with fresh_database(postgres_server) as url:
        reference = make_engine(url)
        migrate.upgrade(reference)
        copy_facts(reference, workload, chunk_size=700)
        assert fact_snapshot(pg_engine) == fact_snapshot(reference)
        for table in ROLLUPS:  # equal up to rounding: summed in other chunks
            assert_same_rollups(
                rollup_snapshot(pg_engine, table), rollup_snapshot(reference, table)
            )
        reference.dispose()
    with pytest.raises(RuntimeError, match="interrupted"), deferred_indexes(pg_engine):
        raise RuntimeError("interrupted")
    assert _fact_job_indexes(pg_engine) == indexes
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_fact_job_user_account_end")
    migrate.upgrade(pg_engine)
    assert _fact_job_indexes(pg_engine) == indexes

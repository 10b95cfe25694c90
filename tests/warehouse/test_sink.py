"""The sink on both backends: idempotent replays, corrections by difference, bad rows."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine, select, text

from schemas.fact import JobFact, Reconciliation, fact_from_record, with_energy
from tests.services.postgres import fresh_database
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
from warehouse.models import FactJob
from warehouse.sink import prepare_facts, write_facts, write_prepared

N_JOBS = 10_000


@pytest.fixture(scope="module")
def workload() -> list[JobFact]:
    return synthdata.facts(N_JOBS, seed=11)


def _rollups(engine: Engine) -> dict[str, dict[tuple[Any, ...], tuple[float, ...]]]:
    return {table: rollup_snapshot(engine, table) for table in ROLLUPS}


def test_replays_shuffled_with_duplicates_give_identical_facts_and_rollups(
    engine: Engine,
    workload: list[JobFact],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Three loads of the same 10k jobs: in order; again shuffled with 10 % duplicates;
    and shuffled with duplicates into a second, empty warehouse."""
    once = write_facts(engine, workload)
    assert once.inserted == N_JOBS and not once.rejected
    facts_once, rollups_once = fact_snapshot(engine), _rollups(engine)
    assert len(facts_once) == N_JOBS
    assert_rollups_equal_fact_sums(engine)

    rng = random.Random(3)

    def shuffled_with_duplicates() -> list[JobFact]:
        replay = workload + rng.sample(workload, N_JOBS // 10)
        rng.shuffle(replay)
        return replay

    again = write_facts(engine, shuffled_with_duplicates(), batch_size=777)
    assert again.inserted == again.updated == 0 and not again.rejected
    assert again.unchanged == N_JOBS and again.duplicates == N_JOBS // 10
    assert fact_snapshot(engine) == facts_once
    for table, rows in _rollups(engine).items():
        assert rows == rollups_once[table]  # nothing moved, not even by rounding

    with _sibling_url(engine, request, tmp_path) as url:
        other = make_engine(url)
        migrate.upgrade(other)
        third = write_facts(other, shuffled_with_duplicates(), batch_size=333)
        assert third.inserted == N_JOBS and third.duplicates == N_JOBS // 10
        assert fact_snapshot(other) == facts_once
        for table, rows in _rollups(other).items():
            assert_same_rollups(rows, rollups_once[table])
        other.dispose()


@contextlib.contextmanager
def _sibling_url(engine: Engine, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another empty database on the same backend."""
    if engine.dialect.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.db'}"
    else:
        with fresh_database(request.getfixturevalue("postgres_server")) as url:
            yield url


def _raw(workload: list[JobFact], n: int) -> list[JobFact]:
    """Facts as ingest makes them (no footprint, not reconciled)."""
    return [fact_from_record(f.record) for f in workload[:n]]


def test_correction_moves_fact_and_rollups_by_the_difference(
    engine: Engine, workload: list[JobFact]
) -> None:
    base = [f for f in workload[:2000] if f.energy_it_j is None and f.footprint is not None]
    assert len(base) > 20
    write_facts(engine, workload[:2000])
    before = fact_snapshot(engine)
    # Reconciliation fills energy from slurmdbd for jobs that had none.
    corrected = [
        msgspec.structs.replace(
            with_energy(f, 3_600_000 + i, "slurmdbd"),
            reconciliation=Reconciliation(status="energy_filled", db_energy_j=3_600_000 + i),
        )
        for i, f in enumerate(base)
    ]
    result = write_facts(engine, corrected)
    assert result.updated == len({f.record.key for f in base}) and not result.rejected
    after = fact_snapshot(engine)
    key = (base[0].record.cluster, base[0].record.job_id, base[0].record.key.submit_epoch)
    assert before[key]["energy_it_j"] is None
    assert after[key]["energy_it_j"] == 3_600_000
    assert after[key]["energy_origin"] == "slurmdbd"
    assert after[key]["reconcile_status"] == "energy_filled"
    # 1 kWh x the stored factor: the accounting CO2e followed the energy.
    assert after[key]["co2e_g"] == pytest.approx(after[key]["co2e_factor_g_per_kwh_it"])
    assert_rollups_equal_fact_sums(engine)
    # Replaying the raw records afterwards changes nothing (lower precedence: stale).
    replay = write_facts(engine, _raw(workload, 2000))
    assert replay.inserted == replay.updated == 0
    assert replay.stale > 0
    assert fact_snapshot(engine) == after
    assert_rollups_equal_fact_sums(engine)


def test_account_change_moves_rollups_between_accounts(engine: Engine) -> None:
    record = synthdata.records(50, seed=5)[10]
    write_facts(engine, [fact_from_record(record)])
    moved = fact_from_record(record.replace(account="chem999", parent_accounts="/root/chem/"))
    assert write_facts(engine, [moved]).updated == 1
    with engine.connect() as conn:
        query = text(
            "SELECT a.name, SUM(r.jobs) FROM rollup_account_month r"
            " JOIN dim_account a ON a.id = r.account_id GROUP BY a.name"
        )
        jobs = {name: count for name, count in conn.execute(query)}
        parent = conn.execute(
            text("SELECT parent_name FROM dim_account WHERE name = 'chem999'")
        ).scalar_one()
    assert jobs == {record.account: 0, "chem999": 1}
    assert parent == "chem"
    assert_rollups_equal_fact_sums(engine)


ADVERSARIAL = [
    "'; DROP TABLE fact_job; --",
    'Robert"); DELETE FROM dim_user; --',
    "tab\there\r\nnewline\x1b[31mansi\x7f",
    "名前-😀-\u202eevil",
    "x" * 100_000,
]


def test_adversarial_strings_land_verbatim(engine: Engine) -> None:
    records = synthdata.records(len(ADVERSARIAL), seed=9)
    facts = [
        fact_from_record(r.replace(job_name=name, user=name[:64], account=name[:32]))
        for r, name in zip(records, ADVERSARIAL, strict=True)
    ]
    result = write_facts(engine, facts)
    assert result.inserted == len(ADVERSARIAL) and not result.rejected
    names = {row["job_name"] for row in fact_snapshot(engine).values()}
    assert names == set(ADVERSARIAL)
    assert_rollups_equal_fact_sums(engine)


def test_bad_rows_are_rejected_by_name_and_good_rows_land(engine: Engine) -> None:
    records = synthdata.records(40, seed=21)
    good = [fact_from_record(r) for r in records[:30]]
    no_cluster = fact_from_record(records[30].replace(cluster=None))
    nul = fact_from_record(records[31].replace(job_name="evil\x00name"))
    huge = fact_from_record(records[32]).__class__(
        record=records[32], energy_it_j=2**70, energy_origin="slurmdbd"
    )
    no_submit = fact_from_record(records[33].replace(submit_time=None))
    start_event = fact_from_record(records[34].replace(event="start"))
    batch = [*good[:15], no_cluster, nul, huge, no_submit, start_event, *good[15:]]
    result = write_facts(engine, batch)
    assert result.inserted == 30 and result.ignored == 1
    reasons = {r.job: r.reason for r in result.rejected}
    assert len(reasons) == 4
    assert f"?:{records[30].job_id}:" in " ".join(reasons)
    assert any("default_cluster" in r for r in reasons.values())
    assert any("NUL" in r and "job_name" in r for r in reasons.values())
    assert any("energy_it_j" in r and "out of range" in r for r in reasons.values())
    assert any("submit_time is missing" in r for r in reasons.values())
    # With a default cluster the cluster-less record lands.
    assert write_facts(engine, [no_cluster], default_cluster="alps").inserted == 1
    assert_rollups_equal_fact_sums(engine)


def _poison_trigger(engine: Engine) -> None:
    """A real constraint the database (not the sink) enforces: job name 'poison' is refused."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
                    " BEGIN IF NEW.job_name = 'poison' THEN RAISE EXCEPTION 'poison row'"
                    " USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON fact_job"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON fact_job"
                    " WHEN NEW.job_name = 'poison' BEGIN SELECT RAISE(ABORT, 'poison row'); END"
                )
            )


def test_row_refused_by_the_database_does_not_abort_the_batch(engine: Engine) -> None:
    _poison_trigger(engine)
    records = synthdata.records(64, seed=4)
    facts = [fact_from_record(r) for r in records]
    facts[37] = fact_from_record(records[37].replace(job_name="poison"))
    result = write_facts(engine, facts, batch_size=64)
    assert result.inserted == 63
    [rejected] = result.rejected
    assert (
        rejected.job == f"{records[37].cluster}:{records[37].job_id}:{records[37].key.submit_epoch}"
    )
    assert "poison row" in rejected.reason and rejected.job in rejected.reason
    assert_rollups_equal_fact_sums(engine)


def test_timestamps_are_aware_utc(engine: Engine) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = synthdata.records(3, seed=1)[0]
    write_facts(engine, [fact_from_record(record)], now=now)
    with engine.connect() as conn:
        submit_at, inserted_at = conn.execute(select(FactJob.submit_at, FactJob.inserted_at)).one()
    assert submit_at == record.submit_time
    assert submit_at.utcoffset() == timedelta(0)
    assert inserted_at == now


def test_midnight_job_lands_half_in_each_day_by_hand(engine: Engine) -> None:
    # 22:00 -> 02:00 across 31 Jan / 1 Feb, 7.2 MJ (2 kWh) IT, 64 CPUs: 1 kWh and 128
    # core-hours on each day, half in January and half in February; counted on 1 Feb.
    record = synthdata.records(5, seed=6)[0].replace(
        user="handcase",
        account="handacct",
        submit_time=datetime(2024, 1, 31, 21, 0, tzinfo=UTC),
        start_time=datetime(2024, 1, 31, 22, 0, tzinfo=UTC),
        end_time=datetime(2024, 2, 1, 2, 0, tzinfo=UTC),
        elapsed_s=4 * 3600,
        cpus=64,
        gpus=None,
    )
    fact = JobFact(record=record, energy_it_j=7_200_000, energy_origin="slurmdbd")
    assert write_facts(engine, [fact]).inserted == 1
    with engine.connect() as conn:
        days = conn.execute(
            text(
                "SELECT r.day, r.jobs, r.energy_it_j, r.core_hours, r.runtime_s"
                " FROM rollup_user_day r JOIN dim_user u ON u.id = r.user_id"
                " WHERE u.name = 'handcase' ORDER BY r.day"
            )
        ).all()
        months = conn.execute(
            text(
                "SELECT r.month, r.jobs, r.energy_it_j FROM rollup_account_month r"
                " JOIN dim_account a ON a.id = r.account_id WHERE a.name = 'handacct'"
                " ORDER BY r.month"
            )
        ).all()
    assert [(str(d), j, e, c, s) for d, j, e, c, s in days] == [
        ("2024-01-31", 0, 3_600_000.0, 128.0, 7200.0),
        ("2024-02-01", 1, 3_600_000.0, 128.0, 7200.0),
    ]
    assert [(str(m), j, e) for m, j, e in months] == [
        ("2024-01-01", 0, 3_600_000.0),
        ("2024-02-01", 1, 3_600_000.0),
    ]


def test_energy_update_outranks_a_late_end_record(engine: Engine) -> None:
    record = synthdata.records(5, seed=12)[1].replace(energy_j=None)
    end = fact_from_record(record)
    update = JobFact(
        record=record.replace(event="energy_update"),
        energy_it_j=5_000_000,
        energy_origin="jobcomp",
    )
    assert write_facts(engine, [update]).inserted == 1
    late = write_facts(engine, [end])  # the end record arrives after the update
    assert late.stale == 1 and late.updated == 0
    with engine.connect() as conn:
        energy = conn.execute(select(FactJob.energy_it_j)).scalar_one()
    assert energy == 5_000_000
    assert_rollups_equal_fact_sums(engine)


def test_schema_recreated_under_the_same_engine_still_lands(engine: Engine) -> None:
    records = synthdata.records(20, seed=30)
    assert write_facts(engine, [fact_from_record(r) for r in records[:10]]).inserted == 10
    migrate.downgrade(engine, "base")  # the engine's cached dimension ids are now stale
    migrate.upgrade(engine)
    result = write_facts(engine, [fact_from_record(r) for r in records[10:]])
    assert result.inserted == 10 and not result.rejected
    assert_rollups_equal_fact_sums(engine)


def test_facts_stored_under_another_hash_are_rewritten_once_and_rollups_do_not_move(
    engine: Engine, workload: list[JobFact]
) -> None:
    """A warehouse loaded before the content hash changed (blake2b of a JSON payload then,
    xxh3 of the binary row now): a replay rewrites each fact once, moves no roll-up (not
    even by rounding) and the next replay finds everything unchanged."""
    facts = workload[:1500]
    assert write_facts(engine, facts).inserted == len({f.record.key for f in facts})
    with engine.begin() as conn:
        conn.execute(text("UPDATE fact_job SET content_hash = 'old:' || content_hash"))
    before_facts, before_rollups = fact_snapshot(engine), _rollups(engine)
    replay = write_facts(engine, facts)
    assert replay.updated == len(before_facts) and replay.inserted == 0 and not replay.rejected
    assert _rollups(engine) == before_rollups
    after = fact_snapshot(engine)
    assert {k: {**v, "content_hash": None} for k, v in after.items()} == {
        k: {**v, "content_hash": None} for k, v in before_facts.items()
    }
    again = write_facts(engine, facts)
    assert again.unchanged == len(before_facts) and again.updated == 0


def test_sqlite_stores_timestamps_as_the_column_type_writes_them(tmp_path: Path) -> None:
    """The SQLite path formats timestamp columns in bulk: the stored text is exactly what
    ``UTCDateTime`` (SQLAlchemy) writes, microseconds and all."""
    from warehouse.types import UTCDateTime

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate.upgrade(engine)
    records = synthdata.records(30, seed=31)
    micro = records[0].end_time.replace(microsecond=123_456)  # type: ignore[union-attr]
    records[0] = records[0].replace(end_time=micro, eligible_time=None)
    now = datetime(2031, 5, 6, 7, 8, 9, 5, tzinfo=UTC)
    assert write_facts(engine, [fact_from_record(r) for r in records], now=now).inserted == 30
    process = UTCDateTime().dialect_impl(engine.dialect).bind_processor(engine.dialect)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT job_id, submit_at, eligible_at, start_at, end_at, inserted_at FROM fact_job"
        ).all()
    by_job = {r.job_id: r for r in records}
    for job_id, *texts in stored:
        r = by_job[job_id]
        want = [r.submit_time, r.eligible_time, r.start_time, r.end_time, now]
        assert texts == [None if w is None else process(w) for w in want]  # type: ignore[misc]
    engine.dispose()


def test_prepare_then_write_prepared_lands_what_write_facts_lands(
    engine: Engine, workload: list[JobFact], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The stream's split (columns on one thread, database on another) is write_facts
    cut in two: same counts, same rejections, same facts and roll-ups."""
    records = synthdata.records(3, seed=23)
    bad = fact_from_record(records[0].replace(job_name="evil\x00name"))
    batch = [*workload[:1500], bad, *workload[:200]]  # 200 duplicates
    prepared = prepare_facts(batch)  # no engine: CPU only
    assert prepared.settled.duplicates == 200 and len(prepared.settled.rejected) == 1
    split = write_prepared(engine, prepared)
    with _sibling_url(engine, request, tmp_path) as url:
        other = make_engine(url)
        migrate.upgrade(other)
        whole = write_facts(other, batch)
        assert (split.inserted, split.duplicates, split.unchanged) == (1500, 200, 0)
        assert (whole.inserted, whole.duplicates, whole.unchanged) == (1500, 200, 0)
        assert split.rejected == whole.rejected
        assert fact_snapshot(engine) == fact_snapshot(other)
        for table, rows in _rollups(engine).items():
            assert_same_rollups(rows, _rollups(other)[table])
        other.dispose()
    assert write_prepared(engine, prepare_facts(batch)).unchanged == 1500

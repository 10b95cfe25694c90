"""``jobcarbon reconcile --since`` and ``jobcarbon backfill --sacct-json/--sacct-psv`` on a
real SQLite warehouse (migrated), the real 25.05 slurmdbd dump in MariaDB and the real CSCS
sacct -P table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from consumers.reconcile.classify import mark
from jobcarbon.cli import cli
from schemas.fact import Co2eEstimate, Footprint, JobFact, fact_from_record
from schemas.job import JobRecord
from tests.services.mariadb import AccountingDB
from tests.warehouse.checks import assert_rollups_equal_fact_sums
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.sink.writer import write_facts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield url, engine
    engine.dispose()


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def job_ten(cluster: str = "localcluster", **fields: object) -> JobRecord:
    """Job 10 of the real 25.05 dump (TIMEOUT), as its jobcomp record would say."""
    values: dict[str, object] = {
        "cluster": cluster,
        "job_id": 10,
        "submit_time": at(1754540923),
        "start_time": at(1754542968),
        "end_time": at(1754546574),
        "state": "TIMEOUT",
    }
    return JobRecord(**(values | fields))  # type: ignore[arg-type]


def unreconciled(record: JobRecord, footprint: Footprint | None = None) -> JobFact:
    fact = fact_from_record(record)
    if footprint is not None:
        fact = JobFact(
            record=record,
            energy_it_j=fact.energy_it_j,
            energy_origin=fact.energy_origin,
            footprint=footprint,
        )
    return mark(fact, "unreconciled", T0, 1, "accounting source unavailable (test)")


def rows(url: str) -> dict[int, tuple[object, ...]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT job_id, reconcile_status, energy_it_j, energy_origin, db_energy_j, "
                "db_account, co2e_g, energy_facility_j, reconcile_attempts FROM fact_job"
            )
        }


@pytest.mark.mariadb
def test_sweep_against_the_25_05_dump(
    warehouse: tuple[str, Engine], slurmdb_2505: AccountingDB
) -> None:
    url, engine = warehouse
    records = [
        JobRecord(
            cluster="localcluster",
            job_id=10,
            submit_time=at(1754540923),
            start_time=at(1754542968),
            end_time=at(1754546574),
            state="TIMEOUT",
            account="oit",
        ),
        JobRecord(
            cluster="localcluster",
            job_id=12,
            submit_time=at(1754545326),
            start_time=at(1754550203),
            end_time=at(1754553803),
            state="COMPLETED",
            account="oit",
        ),
        JobRecord(
            cluster="localcluster",
            job_id=999,
            submit_time=at(1754545326),
            start_time=at(1754550203),
            end_time=at(1754553803),
            state="COMPLETED",
        ),
    ]
    assert write_facts(engine, [unreconciled(r) for r in records]).inserted == 3
    result = CliRunner().invoke(
        cli, ["reconcile", "--since", "2025-08-01", "--db", url, "--accounting", slurmdb_2505.url]
    )
    assert result.exit_code == 0, result.output
    assert "swept 3 fact(s): conflict 1, match 1, missing_in_db 1" in result.output
    got = rows(url)
    assert got[10][:5] == ("match", None, "none", None, "oit")
    assert got[12][0] == "conflict"  # the record says COMPLETED, slurmdbd TIMEOUT
    assert got[999][0] == "missing_in_db"
    assert all(r[-1] == 2 for r in got.values())  # attempts
    assert_rollups_equal_fact_sums(engine)
    # A second sweep finds nothing left but the missing job, which stays missing.
    again = CliRunner().invoke(
        cli, ["reconcile", "--since", "2025-08-01", "--db", url, "--accounting", slurmdb_2505.url]
    )
    assert "swept 1 fact(s): missing_in_db 1" in again.output


@pytest.mark.mariadb
def test_a_cluster_unknown_to_slurmdbd_does_not_hold_back_the_others(
    warehouse: tuple[str, Engine], slurmdb_2505: AccountingDB
) -> None:
    """One slurmdbd serving several clusters: a fact of a cluster it has no tables for stays
    ``unreconciled`` (swept again later) and the run exits 1 naming the cluster and table,
    while the known cluster's facts are settled in the same run."""
    url, engine = warehouse
    known = job_ten(account="oit")
    unknown = job_ten("othercluster", state="COMPLETED", account="oit")
    assert write_facts(engine, [unreconciled(known), unreconciled(unknown)]).inserted == 2
    result = CliRunner().invoke(
        cli, ["reconcile", "--since", "2025-08-01", "--db", url, "--accounting", slurmdb_2505.url]
    )
    assert result.exit_code == 1, result.output
    assert "othercluster_job_table" in result.output
    assert "swept 2 fact(s): match 1, unreconciled 1" in result.output
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        got = dict(conn.execute("SELECT cluster, reconcile_status FROM v_job_footprint"))
    assert got == {"localcluster": "match", "othercluster": "unreconciled"}
    assert_rollups_equal_fact_sums(engine)


def test_sweep_from_sacct_psv_fills_energy_and_co2e_follows(
    warehouse: tuple[str, Engine], shared_data: Path
) -> None:
    url, engine = warehouse
    # CSCS santis job 38113 as a Contain-setup jobcomp record: no energy yet.
    record = JobRecord(
        cluster="santis",
        job_id=38113,
        submit_time=at(1710534000),
        start_time=datetime(2024, 3, 15, 20, 24, 16, tzinfo=UTC),
        end_time=datetime(2024, 3, 15, 20, 59, 18, tzinfo=UTC),
        state="COMPLETED",
        partition="normal",
    )
    estimate = Co2eEstimate(
        provider="owid",
        zone="CH",
        signal="average",
        basis="lifecycle",
        factor_g_per_kwh_it=100.0,
        intensity_g_per_kwh=83.3,
        coverage=1.0,
    )
    footprint = Footprint(
        site="lugano",
        pue_factor=1.2,
        pue_source="static:test",
        pue_coverage=1.0,
        energy_facility_j=None,
        estimates=(estimate,),
    )
    write_facts(engine, [unreconciled(record, footprint)])
    psv = shared_data / "slurm" / "cscs_santis_sacct_energy_job38113.psv"
    result = CliRunner().invoke(
        cli, ["reconcile", "--since", "2024-03-15", "--db", url, "--sacct-psv", str(psv)]
    )
    # The derived table's repeated JobID line is reported (exit 0 only when all is clean).
    assert "repeated job line kept as an unnamed step" in result.output
    assert "swept 1 fact(s): energy_filled 1" in result.output
    status, energy, origin, db_energy, _, co2e, facility, _ = rows(url)[38113]
    assert (status, energy, origin, db_energy) == (
        "energy_filled",
        20_543_125,
        "slurmdbd",
        20_543_125,
    )
    # 20 543 125 J = 5.706 423 6 kWh; x 100 g/kWh = 570.642 36 g; x PUE 1.2 = 24 651 750 J.
    assert co2e == pytest.approx(570.6423611, rel=1e-9)
    assert facility == pytest.approx(24_651_750.0)
    assert_rollups_equal_fact_sums(engine)


def test_backfill_sacct_psv(
    warehouse: tuple[str, Engine], shared_data: Path, tmp_path: Path
) -> None:
    url, engine = warehouse
    psv = shared_data / "slurm" / "cscs_santis_sacct_energy_job38113.psv"
    result = CliRunner().invoke(cli, ["backfill", "--sacct-psv", str(psv), "--db", url])
    # That table has no Submit column: the sink refuses the job, naming the key part.
    assert "submit_time is missing" in result.output and "rejected 1" in result.output
    assert result.exit_code == 1
    # With Submit (and CET times, as sacct prints local time): landed with its energy.
    text = psv.read_text().splitlines()
    header = text[0] + "|Submit"
    lines = [header] + [line + "|2024-03-15-20:20:00" for line in text[1:4]]
    with_submit = tmp_path / "with_submit.psv"
    with_submit.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        cli, ["backfill", "--sacct-psv", str(with_submit), "--tz", "Europe/Zurich", "--db", url]
    )
    assert "read 1 job(s) from sacct -P; inserted 1" in result.output, result.output
    assert result.exit_code == 0
    assert rows(url)[38113][:4] == ("match", 20_543_125, "slurmdbd", 20_543_125)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        (start_epoch,) = conn.execute("SELECT start_epoch FROM fact_job").fetchone()
    assert start_epoch == int(datetime(2024, 3, 15, 19, 24, 16, tzinfo=UTC).timestamp())  # CET
    assert_rollups_equal_fact_sums(engine)


def test_backfill_sacct_json(warehouse: tuple[str, Engine], tmp_path: Path) -> None:
    import orjson

    from tests.consumers.reconcile.test_sacct import V0041

    url, engine = warehouse
    path = tmp_path / "sacct.json"
    path.write_bytes(orjson.dumps(V0041))
    result = CliRunner().invoke(cli, ["backfill", "--sacct-json", str(path), "--db", url])
    assert "read 2 job(s) from sacct --json data_parser/v0.0.41; inserted 2" in result.output
    assert result.exit_code == 1  # two jobs of the file could not be read, and are named
    got = rows(url)
    assert got[87][:4] == ("match", 1260, "slurmdbd", 1260)
    assert got[88][:3] == ("match", None, "none")
    assert_rollups_equal_fact_sums(engine)


def test_reconcile_needs_a_source(warehouse: tuple[str, Engine]) -> None:
    url, _ = warehouse
    result = CliRunner().invoke(cli, ["reconcile", "--since", "2025-01-01", "--db", url])
    assert result.exit_code == 2 and "no accounting source" in result.output
    bad = CliRunner().invoke(
        cli,
        [
            "reconcile",
            "--since",
            "yesterday'; --",
            "--db",
            url,
            "--accounting",
            "mysql+pymysql://x@127.0.0.1:1/x",
        ],
    )
    assert bad.exit_code == 2 and "is not an ISO 8601 date" in bad.output


@pytest.mark.mariadb
def test_fill_gaps_lands_jobs_with_no_record(
    warehouse: tuple[str, Engine], slurmdb_2505: AccountingDB
) -> None:
    url, engine = warehouse
    ten = job_ten()
    write_facts(engine, [unreconciled(ten)])
    args = [
        "reconcile",
        "--since",
        "2025-08-07T06:00:00Z",
        "--db",
        url,
        "--accounting",
        slurmdb_2505.url,
        "--fill-gaps",
        "localcluster",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # Jobs 11, 12 and 13 ended after 06:00 UTC and had no jobcomp record.
    assert "swept 1 fact(s): match 1; filled 3 gap(s) from slurmdbd; inserted 3" in result.output
    got = rows(url)
    assert sorted(got) == [10, 11, 12, 13]
    assert got[11][:2] == ("match", None) and got[12][4] == "oit"
    again = CliRunner().invoke(cli, args)  # idempotent: nothing new
    assert "filled 0 gap(s)" in again.output and "inserted 0" in again.output
    hostile = CliRunner().invoke(cli, [*args[:-1], "x'; DROP TABLE fact_job; --"])
    assert hostile.exit_code == 2 and "not a valid Slurm cluster name" in hostile.output

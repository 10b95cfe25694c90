"""A revision followed by recompute changes exactly the affected facts and roll-ups
(SQLite and real PostgreSQL); facts land through the warehouse sink (``write_facts``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table, select

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint
from consumers.enrich.stage import enrich
from jobcarbon.settings import Settings
from schemas.fact import JobFact, fact_from_record
from schemas.job import EnergyStatus, JobRecord
from warehouse.models import Base
from warehouse.recompute import CO2E, FACT, recompute
from warehouse.series_store import write_intensity
from warehouse.sink.writer import write_facts

T0 = datetime(2024, 3, 5, 20, tzinfo=UTC)
FETCH1 = datetime(2024, 3, 6, tzinfo=UTC)
FETCH2 = datetime(2024, 3, 9, tzinfo=UTC)
SETTINGS = Settings(
    carbon={  # type: ignore[arg-type]
        "clusters": {
            "alps": {"zone": "DE", "site": "cscs"},
            "daint": {"zone": "FR", "site": "cscs"},
        },
        "sites": {"cscs": {"pue": 1.2, "pue_source": "test"}},
        "nearest_limit_s": 0,
    }
)


def hour(zone: str, h: int, value: float, fetched: datetime) -> IntensityPoint:
    return IntensityPoint(
        provider="electricitymaps",
        zone=zone,
        signal="average",
        basis="lifecycle",
        start_at=T0 + timedelta(hours=h),
        end_at=T0 + timedelta(hours=h + 1),
        value_g_per_kwh=value,
        fetched_at=fetched,
    )


def job(
    job_id: int, cluster: str, user: str, account: str, start_h: float, hours: float
) -> JobFact:
    start = T0 + timedelta(hours=start_h)
    record = JobRecord(
        cluster=cluster,
        job_id=job_id,
        submit_time=start - timedelta(minutes=5),
        start_time=start,
        end_time=start + timedelta(hours=hours),
        user=user,
        account=account,
        cpus=4,
        energy_j=3_600_000,
        energy_status=EnergyStatus.MEASURED,
    )
    return fact_from_record(record)


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def land(engine: Engine, facts: list[JobFact], now: datetime) -> None:
    result = write_facts(engine, facts, now=now)
    assert result.inserted == len(facts), result.summary()


def co2e_by_job(conn: Connection) -> dict[int, tuple[float, datetime]]:
    rows = conn.execute(select(FACT.c.job_id, FACT.c.co2e_g, FACT.c.updated_at)).all()
    return {r.job_id: (r.co2e_g, r.updated_at) for r in rows}


def rollup(conn: Connection, name: str, dim: str, dim_name: str, period: str) -> dict[Any, float]:
    t, d = table(name), table(dim)
    key = "user_id" if dim == "dim_user" else "account_id"
    rows = conn.execute(
        select(d.c.name, t.c[period], t.c.co2e_g, t.c.jobs_with_co2e).join(d, d.c.id == t.c[key])
    ).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def test_revision_then_recompute_changes_exactly_the_affected(engine: Engine) -> None:
    # Series v1: DE 20h 600, 21h 700, 22h 800; FR 20h, 21h 50. PUE 1.2, every job 1 kWh.
    # A alps 20:30-21:30: (600+700)/2*1.2 = 780 g. B alps 22:00-23:00: 800*1.2 = 960 g.
    # C daint (FR) 20:00-22:00: 50*1.2 = 60 g. Revision DE 21h 700 -> 500 touches A only:
    # (600+500)/2*1.2 = 660 g.
    v1 = [
        hour("DE", 0, 600, FETCH1),
        hour("DE", 1, 700, FETCH1),
        hour("DE", 2, 800, FETCH1),
        hour("FR", 0, 50, FETCH1),
        hour("FR", 1, 50, FETCH1),
    ]
    lookup = InMemoryLookup()
    lookup.add(v1)
    facts = [
        job(1, "alps", "alice", "phys", 0.5, 1),
        job(2, "alps", "bob", "chem", 2, 1),
        job(3, "daint", "carol", "phys", 0, 2),
    ]
    enriched = [enrich(f, lookup, lookup, SETTINGS, FETCH1) for f in facts]
    with engine.begin() as conn:
        write_intensity(conn, v1, FETCH1)
    land(engine, enriched, FETCH1)
    with engine.connect() as conn:
        before = co2e_by_job(conn)
        user_day = rollup(conn, "rollup_user_day", "dim_user", "", "day")
        acct_month = rollup(conn, "rollup_account_month", "dim_account", "", "month")
    day, month = date(2024, 3, 5), date(2024, 3, 1)
    assert {j: v[0] for j, v in before.items()} == pytest.approx({1: 780, 2: 960, 3: 60})
    assert user_day[("alice", day)] == (pytest.approx(780), 1)
    assert acct_month[("phys", month)] == (pytest.approx(840), 2)

    with engine.begin() as conn:
        result = write_intensity(conn, [hour("DE", 1, 500, FETCH2)], FETCH2)
    assert result.revised == 1
    done = recompute(engine, SETTINGS, T0 - timedelta(hours=20), T0 + timedelta(hours=4), FETCH2)
    assert done.examined == 3 and len(done.changed_ids) == 1

    with engine.connect() as conn:
        after = co2e_by_job(conn)
        assert after[1][0] == pytest.approx(660) and after[1][1] == FETCH2
        assert after[2] == before[2] and after[3] == before[3]  # value and updated_at kept
        co2e_rows = conn.execute(
            select(CO2E.c.co2e_g, CO2E.c.intensity_g_per_kwh).where(
                CO2E.c.fact_id == done.changed_ids[0]
            )
        ).all()
        assert [tuple(r) for r in co2e_rows] == [(pytest.approx(660), pytest.approx(550))]
        user_after = rollup(conn, "rollup_user_day", "dim_user", "", "day")
        acct_after = rollup(conn, "rollup_account_month", "dim_account", "", "month")
        acct_day_after = rollup(conn, "rollup_account_day", "dim_account", "", "day")
    assert user_after[("alice", day)] == (pytest.approx(660), 1)
    assert user_after[("bob", day)] == user_day[("bob", day)]
    assert user_after[("carol", day)] == user_day[("carol", day)]
    assert acct_after[("phys", month)] == (pytest.approx(720), 2)
    assert acct_after[("chem", month)] == acct_month[("chem", month)]
    assert acct_day_after[("phys", day)] == (pytest.approx(720), 2)

    again = recompute(engine, SETTINGS, T0 - timedelta(hours=20), T0 + timedelta(hours=4), FETCH2)
    assert again.changed_ids == () and again.rollup_rows == 0

    # A replay of the original fact is "unchanged" for the sink: it does not undo the
    # recomputation. A fact enriched afresh (as the stream would now) lands with the same
    # numbers, so the roll-ups do not move either.
    assert write_facts(engine, [enriched[0]], now=FETCH2).unchanged == 1
    fresh = InMemoryLookup()
    fresh.add([*v1, hour("DE", 1, 500, FETCH2)])
    assert write_facts(
        engine, [enrich(facts[0], fresh, fresh, SETTINGS, FETCH2)], now=FETCH2
    ).landed
    with engine.connect() as conn:
        assert co2e_by_job(conn)[1][0] == pytest.approx(660)
        assert rollup(conn, "rollup_user_day", "dim_user", "", "day")[("alice", day)] == (
            pytest.approx(660),
            1,
        )


def test_recompute_outside_the_window_touches_nothing(engine: Engine) -> None:
    lookup = InMemoryLookup()
    fact = enrich(job(1, "alps", "alice", "phys", 0, 1), lookup, lookup, SETTINGS, FETCH1)
    land(engine, [fact], FETCH1)
    with engine.begin() as conn:
        write_intensity(conn, [hour("DE", 0, 100, FETCH2)], FETCH2)
    later = recompute(engine, SETTINGS, T0 + timedelta(days=1), T0 + timedelta(days=2), FETCH2)
    assert later.examined == 0
    # Inside the window the default-intensity footprint (475 g/kWh) becomes 100 * 1.2 = 120 g.
    inside = recompute(engine, SETTINGS, T0, T0 + timedelta(hours=1), FETCH2)
    assert len(inside.changed_ids) == 1
    with engine.connect() as conn:
        assert co2e_by_job(conn)[1][0] == pytest.approx(120)


def test_cli_recompute(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from jobcarbon.cli import cli
    from warehouse import migrate
    from warehouse.engine import make_engine

    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = make_engine(url)
    migrate.upgrade(eng)
    lookup = InMemoryLookup()
    land(
        eng,
        [enrich(job(1, "other", "u", "a", 0, 1), lookup, lookup, Settings(), FETCH1)],
        FETCH1,
    )
    eng.dispose()
    owid = tmp_path / "owid.csv"
    owid.write_text(
        "Entity,Code,Year,Carbon intensity of electricity per kWh\nWorld,WORLD,2024,400\n"
    )
    # Cluster "other" is unconfigured: zone WORLD, static PUE 1.56, default 475 g/kWh; with the
    # annual file the WORLD 2024 average 400 applies: 1 kWh * 1.56 * 400 = 624 g.
    out = CliRunner().invoke(
        cli,
        [
            "recompute",
            "--from",
            "2024-03-05",
            "--to",
            "2024-03-06",
            "--db",
            url,
            "--annual",
            str(owid),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "1 fact(s) examined, 1 changed" in out.output
    eng = make_engine(url)
    with eng.connect() as conn:
        assert co2e_by_job(conn)[1][0] == pytest.approx(624)
    eng.dispose()

"""Admin views and the jobs/usage queries on both backends, against the roll-ups and facts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from consumers.ingest import normalize_bytes
from jobcarbon.synth import generate_jobs, render
from schemas.fact import JobFact
from schemas.job import JobRecord
from tests.warehouse import synthdata
from warehouse.queries import list_jobs, usage
from warehouse.sink import write_facts
from warehouse.views import VIEWS


def _recent_facts(n: int, days_ago: int) -> list[JobFact]:
    """Facts of jobs submitted from ``days_ago`` days before now (so the windows see them)."""
    start = (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)
    facts = []
    for job in generate_jobs(n, seed=3, start=start, days=3):
        record = normalize_bytes(render(job, "24.11-patched"))
        assert isinstance(record, JobRecord)
        facts.append(synthdata.enriched(record))
    return facts


def test_every_view_answers(engine: Engine) -> None:
    write_facts(engine, synthdata.facts(300, seed=2))
    with engine.connect() as conn:
        for name in VIEWS:
            conn.execute(text(f"SELECT * FROM {name}")).all()
        jobs = conn.execute(text("SELECT COUNT(*) FROM v_job_footprint")).scalar_one()
        estimates = conn.execute(text("SELECT COUNT(*) FROM v_job_co2e")).scalar_one()
        quality = conn.execute(
            text(
                "SELECT SUM(jobs), SUM(jobs_with_energy + jobs_missing_energy"
                " + jobs_invalid_energy) FROM v_data_quality"
            )
        ).one()
    assert jobs == 300
    assert estimates == 2 * _count_enriched(engine)
    assert tuple(quality) == (300, 300)


def _count_enriched(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT COUNT(*) FROM fact_job WHERE site IS NOT NULL")).scalar_one()
        )


def test_window_footprints_equal_rollup_sums(engine: Engine) -> None:
    write_facts(engine, _recent_facts(400, days_ago=6))
    with engine.connect() as conn:
        by_view = {
            name: (jobs, co2e_kg)
            for name, jobs, co2e_kg in conn.execute(
                text(
                    "SELECT account, jobs, co2e_kg FROM v_account_footprint"
                    " WHERE period = 'last_4_weeks'"
                )
            )
        }
        totals = conn.execute(text("SELECT SUM(jobs), SUM(co2e_g) FROM rollup_account_day")).one()
        top = conn.execute(
            text(
                "SELECT name, co2e_kg FROM v_top_emitters WHERE period = 'last_4_weeks'"
                " AND kind = 'user' AND rank = 1"
            )
        ).all()
        max_user = conn.execute(
            text("SELECT MAX(co2e_kg) FROM v_user_footprint WHERE period = 'last_4_weeks'")
        ).scalar_one()
    # All jobs ran within the last 10 days: the 4-week window holds every roll-up row.
    assert sum(j for j, _ in by_view.values()) == totals[0] == 400
    assert math.isclose(sum(c for _, c in by_view.values()), totals[1] / 1000, rel_tol=1e-9)
    assert top and math.isclose(top[0][1], max_user)

    since = (datetime.now(UTC) - timedelta(days=30)).date()
    with engine.connect() as conn:
        lines = usage(conn, by="account", since=since)
        users = usage(conn, by="user", since=since)
    assert {u.name: u.jobs for u in lines} == {k: v[0] for k, v in by_view.items()}
    assert sum(u.jobs for u in users) == 400
    assert [u.co2e_kg for u in users] == sorted((u.co2e_kg for u in users), reverse=True)


def test_list_jobs_filters_and_shows_every_provider(engine: Engine) -> None:
    facts = synthdata.facts(200, seed=8)
    write_facts(engine, facts)
    user = facts[0].record.user
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with engine.connect() as conn:
        mine = list_jobs(conn, since=since, user=user)
        everyone = list_jobs(conn, since=since)
        injected = list_jobs(conn, since=since, user="' OR '1'='1")
    assert {line.user for line in mine} == {user}
    assert len(mine) == sum(1 for f in facts if f.record.user == user)
    assert len(everyone) == 200
    assert injected == []
    enriched = [line for line in everyone if line.co2e_g]
    assert enriched and set(enriched[0].co2e_g) == {"electricitymaps/average", "watttime/marginal"}
    by_key = {(f.record.job_id): f for f in facts}
    for line in everyone:
        fact = by_key[line.job_id]
        if fact.energy_it_j is not None:
            assert line.energy_it_kwh == pytest.approx(fact.energy_it_j / 3.6e6)
        estimate = fact.accounting_estimate
        if estimate is not None:
            assert line.co2e_g["electricitymaps/average"] == pytest.approx(estimate.co2e_g)

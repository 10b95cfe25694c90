"""Test helpers: snapshots of facts and roll-ups, and roll-ups recomputed in SQL from facts.

The SQL below restates the apportioning rule independently of ``warehouse.apportion`` (it
is the check, not the implementation).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, text

from warehouse.integrity import orphans
from warehouse.models import MEASURES

IGNORED_FACT_COLUMNS = {"id", "inserted_at", "updated_at"}

ROLLUPS = {
    "rollup_user_day": ("user_id", "dim_user", "day"),
    "rollup_account_day": ("account_id", "dim_account", "day"),
    "rollup_account_month": ("account_id", "dim_account", "month"),
}


def fact_snapshot(engine: Engine) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every fact by natural key (dimension names, not ids), with its CO2e estimates."""
    sql = text(
        "SELECT c.name AS cluster, u.name AS user_name, a.name AS account, p.name AS part,"
        " q.name AS qos_name, f.* FROM fact_job f"
        " JOIN dim_cluster c ON c.id = f.cluster_id JOIN dim_user u ON u.id = f.user_id"
        " JOIN dim_account a ON a.id = f.account_id JOIN dim_partition p ON p.id = f.partition_id"
        " JOIN dim_qos q ON q.id = f.qos_id"
    )
    co2e_sql = text(
        "SELECT f.id, e.provider, e.zone, e.signal, e.basis, e.factor_g_per_kwh_it, e.co2e_g"
        " FROM fact_job_co2e e JOIN fact_job f ON f.id = e.fact_id"
        " ORDER BY e.provider, e.zone, e.signal"
    )
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    with engine.connect() as conn:
        # The joins below would hide a row whose reference has no target: none may exist.
        assert orphans(conn) == {}
        estimates: dict[int, list[tuple[Any, ...]]] = {}
        for est in conn.execute(co2e_sql):
            estimates.setdefault(est[0], []).append(tuple(est[1:]))
        for row in conn.execute(sql).mappings():
            values = {k: v for k, v in row.items() if k not in IGNORED_FACT_COLUMNS}
            for k in ("cluster_id", "user_id", "account_id", "partition_id", "qos_id"):
                values.pop(k)
            values["co2e"] = estimates.get(row["id"], [])
            out[(row["cluster"], row["job_id"], row["submit_epoch"])] = values
    return out


def rollup_snapshot(engine: Engine, table: str) -> dict[tuple[Any, ...], tuple[float, ...]]:
    """A roll-up table by (dimension name, period)."""
    dim_col, dim_table, period = ROLLUPS[table]
    cols = ", ".join(f"r.{m}" for m in MEASURES)
    sql = text(
        f"SELECT d.name, r.{period}, {cols} FROM {table} r JOIN {dim_table} d ON d.id = r.{dim_col}"
    )
    with engine.connect() as conn:
        return {(row[0], str(row[1])): tuple(row[2:]) for row in conn.execute(sql)}


def assert_same_rollups(
    left: dict[tuple[Any, ...], tuple[float, ...]], right: dict[tuple[Any, ...], tuple[float, ...]]
) -> None:
    """Equal up to float rounding (rows that are all zero count as absent)."""

    def live(rows: dict[tuple[Any, ...], tuple[float, ...]]) -> dict[tuple[Any, ...], Any]:
        return {k: v for k, v in rows.items() if any(abs(x) > 1e-6 for x in v)}

    a, b = live(left), live(right)
    assert a.keys() == b.keys()
    for key in a:
        for name, x, y in zip(MEASURES, a[key], b[key], strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6), (key, name, x, y)


def _period_bounds(dialect: str, period: str, monthly: bool) -> tuple[str, str]:
    if dialect == "postgresql":
        p0 = f"extract(epoch from r.{period}::timestamp)"
        step = "interval '1 month'" if monthly else "interval '1 day'"
        return p0, f"extract(epoch from (r.{period} + {step})::timestamp)"
    p0 = f"CAST(strftime('%s', r.{period}) AS INTEGER)"
    step = "'+1 month'" if monthly else "'+1 day'"
    return p0, f"CAST(strftime('%s', r.{period}, {step}) AS INTEGER)"


def rollups_from_facts(engine: Engine, table: str) -> dict[tuple[Any, ...], tuple[float, ...]]:
    """Every row of ``table`` recomputed as an SQL sum over ``fact_job``."""
    dim_col, dim_table, period = ROLLUPS[table]
    p0, p1 = _period_bounds(engine.dialect.name, period, period == "month")
    anchor = "COALESCE(f.end_epoch, f.start_epoch, f.submit_epoch)"
    in_anchor = f"({anchor} >= p.p0 AND {anchor} < p.p1)"
    ran = "(f.start_epoch IS NOT NULL AND f.end_epoch > f.start_epoch)"
    overlap = (
        "(CASE WHEN f.end_epoch < p.p1 THEN f.end_epoch ELSE p.p1 END"
        " - CASE WHEN f.start_epoch > p.p0 THEN f.start_epoch ELSE p.p0 END)"
    )

    def count(cond: str) -> str:
        return f"SUM(CASE WHEN {in_anchor} AND {cond} THEN 1 ELSE 0 END)"

    def seconds(weight: str) -> str:  # runtime-weighted, not share-weighted
        return f"SUM(CASE WHEN {ran} THEN {weight} * {overlap} ELSE 0 END)"

    def share(value: str) -> str:
        return (
            f"SUM(CASE WHEN {ran} THEN {value} * {overlap} * 1.0 / (f.end_epoch - f.start_epoch)"
            f" WHEN {in_anchor} THEN {value} ELSE 0 END)"
        )

    measures = {
        "jobs": count("1 = 1"),
        "jobs_with_energy": count("f.energy_it_j IS NOT NULL"),
        "jobs_missing_energy": count(
            "f.energy_it_j IS NULL AND f.jobcomp_energy_status <> 'invalid'"
        ),
        "jobs_invalid_energy": count(
            "f.energy_it_j IS NULL AND f.jobcomp_energy_status = 'invalid'"
        ),
        "jobs_with_co2e": count("f.co2e_g IS NOT NULL"),
        "jobs_unreconciled": count("f.reconcile_status IN ('not_checked', 'unreconciled')"),
        "runtime_s": seconds("1"),
        "core_hours": seconds("COALESCE(f.cpus, 0) / 3600.0"),
        "core_hours_with_energy": seconds(
            "(CASE WHEN f.energy_it_j IS NULL THEN 0 ELSE COALESCE(f.cpus, 0) END) / 3600.0"
        ),
        "gpu_hours": seconds("COALESCE(f.gpus, 0) / 3600.0"),
        "energy_it_j": share("COALESCE(f.energy_it_j, 0)"),
        "energy_facility_j": share("COALESCE(f.energy_facility_j, 0)"),
        "co2e_g": share("COALESCE(f.co2e_g, 0)"),
        "cost": share("COALESCE(f.cost, 0)"),
    }
    select = ", ".join(f"{measures[m]} AS {m}" for m in MEASURES)
    sql = text(
        f"WITH p AS (SELECT r.{dim_col} AS dim_id, r.{period} AS period, {p0} AS p0, {p1} AS p1"
        f" FROM {table} r)"
        f" SELECT d.name, p.period, {select} FROM p"
        f" JOIN fact_job f ON f.{dim_col} = p.dim_id"
        f" AND (({ran} AND f.start_epoch < p.p1 AND f.end_epoch > p.p0) OR {in_anchor})"
        f" JOIN {dim_table} d ON d.id = p.dim_id"
        " GROUP BY d.name, p.period"
    )
    with engine.connect() as conn:
        return {
            (row[0], str(row[1])): tuple(float(x or 0) for x in row[2:])
            for row in conn.execute(sql)
        }


def assert_rollups_equal_fact_sums(engine: Engine) -> None:
    """Every roll-up row equals the SQL sum over its facts, and the totals match (so no
    fact contributes to a period that has no row)."""
    totals_sql = text(
        "SELECT COUNT(*), COALESCE(SUM(energy_it_j), 0), COALESCE(SUM(energy_facility_j), 0),"
        " COALESCE(SUM(co2e_g), 0) FROM fact_job"
    )
    with engine.connect() as conn:
        jobs, energy, facility, co2e = (float(x) for x in conn.execute(totals_sql).one())
    for table in ROLLUPS:
        stored = rollup_snapshot(engine, table)
        assert_same_rollups(stored, rollups_from_facts(engine, table))
        sums = [sum(row[MEASURES.index(m)] for row in stored.values()) for m in
                ("jobs", "energy_it_j", "energy_facility_j", "co2e_g")]  # fmt: skip
        for got, want in zip(sums, (jobs, energy, facility, co2e), strict=True):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (table, got, want)

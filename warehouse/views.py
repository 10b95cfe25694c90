"""Views, kept in code and re-created at head by ``warehouse.migrate`` (repeatable).

Each view has one SQL text, or one per dialect where date arithmetic differs. Views only
read tables; dropping and re-creating them loses nothing.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

#: The windows of the footprint views: (name, SQL for the first day on each dialect).
#: "last_4_weeks" is the 28 days ending today (UTC); month and year are calendar-to-date.
WINDOWS: Final = (
    ("last_4_weeks", {"postgresql": "CURRENT_DATE - 27", "sqlite": "date('now', '-27 days')"}),
    ("month", {"postgresql": "CAST(date_trunc('month', CURRENT_DATE) AS date)",
               "sqlite": "date('now', 'start of month')"}),
    ("year", {"postgresql": "CAST(date_trunc('year', CURRENT_DATE) AS date)",
              "sqlite": "date('now', 'start of year')"}),
)  # fmt: skip

_TOTALS = """
    SUM(r.jobs) AS jobs,
    SUM(r.core_hours) AS core_hours,
    SUM(r.gpu_hours) AS gpu_hours,
    SUM(r.energy_it_j) / 3600000.0 AS energy_it_kwh,
    SUM(r.energy_facility_j) / 3600000.0 AS energy_facility_kwh,
    SUM(r.co2e_g) / 1000.0 AS co2e_kg,
    SUM(r.cost) AS cost,
    SUM(r.jobs_with_energy) AS jobs_with_energy,
    CASE WHEN SUM(r.core_hours) > 0
         THEN SUM(r.core_hours_with_energy) / SUM(r.core_hours) END AS energy_coverage
"""


def _windowed(table: str, dim_sql: str, dim_join: str, group: str) -> dict[str, str]:
    """A footprint per dimension member and window, from a day roll-up, on each dialect."""
    out = {}
    for dialect in ("postgresql", "sqlite"):
        parts = [
            # Composed from this module's constants only (no caller text).
            f"SELECT '{window}' AS period, {dim_sql}, {_TOTALS}"  # noqa: S608
            f" FROM {table} r {dim_join} WHERE r.day >= {first[dialect]} GROUP BY {group}"
            for window, first in WINDOWS
        ]
        out[dialect] = " UNION ALL ".join(parts)
    return out


#: name -> SQL (str, same on both dialects) or {dialect name: SQL}. Order: dependencies first.
VIEWS: Final[dict[str, str | dict[str, str]]] = {
    "v_carbon_intensity_latest": """
        SELECT ci.*
        FROM ts_carbon_intensity ci
        WHERE NOT EXISTS (
            SELECT 1 FROM ts_carbon_intensity newer
            WHERE newer.provider = ci.provider AND newer.zone = ci.zone
              AND newer.signal = ci.signal AND newer.basis = ci.basis
              AND newer.interval_start = ci.interval_start
              AND newer.version > ci.version
        )
    """,
    # One row per job: what it used and emitted, with provenance.
    "v_job_footprint": """
        SELECT f.id AS fact_id, c.name AS cluster, f.job_id, f.submit_epoch,
               f.array_job_id, f.array_task_id, f.job_name,
               u.name AS user_name, a.name AS account, p.name AS partition, q.name AS qos,
               f.state, f.submit_at, f.start_at, f.end_at, f.elapsed_s,
               f.node_count, f.cpus, f.gpus, f.shared_node,
               f.energy_it_j, f.energy_it_j / 3600000.0 AS energy_it_kwh, f.energy_origin,
               f.jobcomp_energy_status, f.energy_facility_j / 3600000.0 AS energy_facility_kwh,
               f.pue_factor, f.pue_source, f.co2e_g, f.co2e_g / 1000.0 AS co2e_kg,
               f.co2e_provider, f.co2e_zone, f.co2e_coverage, f.cost, f.currency,
               f.reconcile_status
        FROM fact_job f
        JOIN dim_cluster c ON c.id = f.cluster_id
        JOIN dim_user u ON u.id = f.user_id
        JOIN dim_account a ON a.id = f.account_id
        JOIN dim_partition p ON p.id = f.partition_id
        JOIN dim_qos q ON q.id = f.qos_id
    """,
    # One row per job and carbon-intensity estimate (provider, zone, signal).
    "v_job_co2e": """
        SELECT c.name AS cluster, f.job_id, f.submit_epoch, u.name AS user_name,
               a.name AS account, f.end_at, e.provider, e.zone, e.signal, e.basis,
               e.intensity_g_per_kwh, e.factor_g_per_kwh_it, e.coverage, e.fallback, e.co2e_g
        FROM fact_job_co2e e
        JOIN fact_job f ON f.id = e.fact_id
        JOIN dim_cluster c ON c.id = f.cluster_id
        JOIN dim_user u ON u.id = f.user_id
        JOIN dim_account a ON a.id = f.account_id
    """,
    "v_user_footprint": _windowed(
        "rollup_user_day", "u.name AS user_name", "JOIN dim_user u ON u.id = r.user_id", "u.name"
    ),
    "v_account_footprint": _windowed(
        "rollup_account_day",
        "a.name AS account, a.parent_name",
        "JOIN dim_account a ON a.id = r.account_id",
        "a.name, a.parent_name",
    ),
    # Ranked emitters per window (users and accounts): WHERE rank <= 10.
    "v_top_emitters": """
        SELECT period, 'user' AS kind, user_name AS name, co2e_kg, energy_facility_kwh, jobs,
               RANK() OVER (PARTITION BY period ORDER BY co2e_kg DESC) AS rank
        FROM v_user_footprint
        UNION ALL
        SELECT period, 'account' AS kind, account AS name, co2e_kg, energy_facility_kwh, jobs,
               RANK() OVER (PARTITION BY period ORDER BY co2e_kg DESC) AS rank
        FROM v_account_footprint
    """,
    # Data quality per month: energy and CO2e coverage, missing/invalid, unreconciled.
    "v_data_quality": """
        SELECT r.month, SUM(r.jobs) AS jobs, SUM(r.jobs_with_energy) AS jobs_with_energy,
               SUM(r.jobs_missing_energy) AS jobs_missing_energy,
               SUM(r.jobs_invalid_energy) AS jobs_invalid_energy,
               SUM(r.jobs_with_co2e) AS jobs_with_co2e,
               SUM(r.jobs_unreconciled) AS jobs_unreconciled,
               CASE WHEN SUM(r.jobs) > 0
                    THEN 1.0 * SUM(r.jobs_with_energy) / SUM(r.jobs) END AS job_energy_coverage,
               CASE WHEN SUM(r.core_hours) > 0
                    THEN SUM(r.core_hours_with_energy) / SUM(r.core_hours)
               END AS core_hour_energy_coverage
        FROM rollup_account_month r
        GROUP BY r.month
    """,
    # Jobs that still need attention from reconciliation.
    "v_unreconciled_jobs": """
        SELECT c.name AS cluster, f.job_id, f.submit_epoch, u.name AS user_name,
               a.name AS account, f.end_at, f.reconcile_status, f.reconcile_attempts,
               f.reconciled_at, f.reconcile_differences, f.energy_origin
        FROM fact_job f
        JOIN dim_cluster c ON c.id = f.cluster_id
        JOIN dim_user u ON u.id = f.user_id
        JOIN dim_account a ON a.id = f.account_id
        WHERE f.reconcile_status IN ('not_checked', 'unreconciled', 'missing_in_db', 'conflict')
    """,
    # References without a target (PostgreSQL does not enforce them since revision 0003:
    # the sink owns them). Empty after every load; see warehouse.integrity.
    "v_orphan_references": """
        SELECT 'fact_job.cluster_id' AS reference, COUNT(*) AS orphans
        FROM fact_job f LEFT JOIN dim_cluster d ON d.id = f.cluster_id WHERE d.id IS NULL
        UNION ALL
        SELECT 'fact_job.user_id', COUNT(*)
        FROM fact_job f LEFT JOIN dim_user d ON d.id = f.user_id WHERE d.id IS NULL
        UNION ALL
        SELECT 'fact_job.account_id', COUNT(*)
        FROM fact_job f LEFT JOIN dim_account d ON d.id = f.account_id WHERE d.id IS NULL
        UNION ALL
        SELECT 'fact_job.partition_id', COUNT(*)
        FROM fact_job f LEFT JOIN dim_partition d ON d.id = f.partition_id WHERE d.id IS NULL
        UNION ALL
        SELECT 'fact_job.qos_id', COUNT(*)
        FROM fact_job f LEFT JOIN dim_qos d ON d.id = f.qos_id WHERE d.id IS NULL
        UNION ALL
        SELECT 'fact_job_co2e.fact_id', COUNT(*)
        FROM fact_job_co2e e LEFT JOIN fact_job f ON f.id = e.fact_id WHERE f.id IS NULL
    """,
}

#: The read-only role (PostgreSQL) that gets SELECT on every view when they are re-created.
READER_ROLE: Final = "jobcarbon_reader"


def view_sql(name: str, dialect: str) -> str:
    """The SELECT behind view ``name`` on ``dialect``."""
    sql = VIEWS[name]
    return sql if isinstance(sql, str) else sql[dialect]


def create_all(conn: Connection) -> None:
    """Create every view (the tables must be at head); on PostgreSQL the reader role, if it
    exists, gets SELECT on them again (a re-created view has no grants)."""
    for name in VIEWS:
        conn.execute(text(f"CREATE VIEW {name} AS {view_sql(name, conn.dialect.name)}"))
    if conn.dialect.name == "postgresql":
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": READER_ROLE}
        ).first()
        if exists:
            for name in VIEWS:
                conn.execute(text(f"GRANT SELECT ON {name} TO {READER_ROLE}"))


def drop_all(conn: Connection) -> None:
    """Drop every view this code knows (missing ones are fine), dependents first."""
    for name in reversed(list(VIEWS)):
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))

"""warehouse schema v1: dimensions, facts, roll-ups, time series, credit.

Written from the models in ``warehouse.models`` (autogenerate on SQLite, then frozen);
the same DDL runs on PostgreSQL and SQLite. Views are not here: ``warehouse.views`` keeps
them and ``warehouse.migrate`` re-creates them at head.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 10:06:18.831312
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_allocation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_g", sa.Float(), nullable=False),
        sa.Column("carry_over_g", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("amount_g >= 0", name=op.f("ck_credit_allocation_amount")),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_credit_allocation_period")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_allocation")),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_type", sa.Text(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("submit_epoch", sa.BigInteger(), nullable=True),
        sa.Column(
            "reservation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("amount_g", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "entry_type IN ('reservation', 'settlement', 'release', 'adjustment')",
            name=op.f("ck_credit_ledger_entry_type"),
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["credit_ledger.id"],
            name=op.f("fk_credit_ledger_reservation_id_credit_ledger"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_credit_ledger_idempotency_key")),
    )
    op.create_index(
        "ix_credit_ledger_account_created", "credit_ledger", ["account", "created_at"], unique=False
    )
    op.create_index(
        "ix_credit_ledger_job", "credit_ledger", ["cluster", "job_id", "submit_epoch"], unique=False
    )

    op.create_table(
        "dim_account",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parent_name", sa.Text(), nullable=True),
        sa.Column("lineage", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dim_account")),
        sa.UniqueConstraint("name", name=op.f("uq_dim_account_name")),
    )
    op.create_table(
        "dim_cluster",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dim_cluster")),
        sa.UniqueConstraint("name", name=op.f("uq_dim_cluster_name")),
    )
    op.create_table(
        "dim_qos",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dim_qos")),
        sa.UniqueConstraint("name", name=op.f("uq_dim_qos_name")),
    )
    op.create_table(
        "dim_user",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dim_user")),
        sa.UniqueConstraint("name", name=op.f("uq_dim_user_name")),
    )
    op.create_table(
        "ts_carbon_intensity",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("signal", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_g_per_kwh", sa.Float(), nullable=False),
        sa.Column("is_estimated", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "basis IN ('lifecycle', 'direct', 'unspecified')",
            name=op.f("ck_ts_carbon_intensity_basis"),
        ),
        sa.CheckConstraint(
            "signal IN ('average', 'marginal')", name=op.f("ck_ts_carbon_intensity_signal")
        ),
        sa.CheckConstraint(
            "interval_end > interval_start", name=op.f("ck_ts_carbon_intensity_interval")
        ),
        sa.CheckConstraint("value_g_per_kwh >= 0", name=op.f("ck_ts_carbon_intensity_value")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_ts_carbon_intensity_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ts_carbon_intensity")),
        sa.UniqueConstraint(
            "provider",
            "zone",
            "signal",
            "basis",
            "interval_start",
            "version",
            name="uq_ts_carbon_intensity_version",
        ),
    )
    op.create_table(
        "ts_meter_reading",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("meter_id", sa.Text(), nullable=False),
        sa.Column("node", sa.Text(), nullable=True),
        sa.Column("rack", sa.Text(), nullable=True),
        sa.Column("room", sa.Text(), nullable=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("power_w", sa.Float(), nullable=True),
        sa.Column("energy_j", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "power_w IS NOT NULL OR energy_j IS NOT NULL", name=op.f("ck_ts_meter_reading_value")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ts_meter_reading")),
        sa.UniqueConstraint("meter_id", "ts", "source", name="uq_ts_meter_reading"),
    )
    op.create_index(op.f("ix_ts_meter_reading_node"), "ts_meter_reading", ["node"], unique=False)

    op.create_table(
        "ts_pue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("it_power_w", sa.Float(), nullable=True),
        sa.Column("total_power_w", sa.Float(), nullable=True),
        sa.Column("pue", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("interval_end > interval_start", name=op.f("ck_ts_pue_interval")),
        sa.CheckConstraint(
            "pue IS NOT NULL OR (it_power_w > 0 AND total_power_w >= it_power_w)",
            name=op.f("ck_ts_pue_power_or_pue"),
        ),
        sa.CheckConstraint("pue IS NULL OR pue >= 1", name=op.f("ck_ts_pue_pue")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ts_pue")),
        sa.UniqueConstraint("site", "interval_start", "source", name="uq_ts_pue_interval"),
    )
    op.create_table(
        "dim_partition",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "cluster_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["dim_cluster.id"], name=op.f("fk_dim_partition_cluster_id_dim_cluster")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dim_partition")),
        sa.UniqueConstraint("cluster_id", "name", name=op.f("uq_dim_partition_cluster_id_name")),
    )
    op.create_table(
        "rollup_account_day",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_missing_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_invalid_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_co2e", sa.BigInteger(), nullable=False),
        sa.Column("jobs_unreconciled", sa.BigInteger(), nullable=False),
        sa.Column("runtime_s", sa.Float(), nullable=False),
        sa.Column("core_hours", sa.Float(), nullable=False),
        sa.Column("core_hours_with_energy", sa.Float(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_it_j", sa.Float(), nullable=False),
        sa.Column("energy_facility_j", sa.Float(), nullable=False),
        sa.Column("co2e_g", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["dim_account.id"],
            name=op.f("fk_rollup_account_day_account_id_dim_account"),
        ),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_rollup_account_day")),
    )
    op.create_table(
        "rollup_account_month",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_missing_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_invalid_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_co2e", sa.BigInteger(), nullable=False),
        sa.Column("jobs_unreconciled", sa.BigInteger(), nullable=False),
        sa.Column("runtime_s", sa.Float(), nullable=False),
        sa.Column("core_hours", sa.Float(), nullable=False),
        sa.Column("core_hours_with_energy", sa.Float(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_it_j", sa.Float(), nullable=False),
        sa.Column("energy_facility_j", sa.Float(), nullable=False),
        sa.Column("co2e_g", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["dim_account.id"],
            name=op.f("fk_rollup_account_month_account_id_dim_account"),
        ),
        sa.PrimaryKeyConstraint("account_id", "month", name=op.f("pk_rollup_account_month")),
    )
    op.create_table(
        "rollup_user_day",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_missing_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_invalid_energy", sa.BigInteger(), nullable=False),
        sa.Column("jobs_with_co2e", sa.BigInteger(), nullable=False),
        sa.Column("jobs_unreconciled", sa.BigInteger(), nullable=False),
        sa.Column("runtime_s", sa.Float(), nullable=False),
        sa.Column("core_hours", sa.Float(), nullable=False),
        sa.Column("core_hours_with_energy", sa.Float(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_it_j", sa.Float(), nullable=False),
        sa.Column("energy_facility_j", sa.Float(), nullable=False),
        sa.Column("co2e_g", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["dim_user.id"], name=op.f("fk_rollup_user_day_user_id_dim_user")
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_rollup_user_day")),
    )
    op.create_table(
        "fact_job",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "cluster_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("submit_epoch", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("array_job_id", sa.BigInteger(), nullable=True),
        sa.Column("array_task_id", sa.BigInteger(), nullable=True),
        sa.Column("het_job_id", sa.BigInteger(), nullable=True),
        sa.Column("het_job_offset", sa.BigInteger(), nullable=True),
        sa.Column("sluid", sa.Text(), nullable=True),
        sa.Column("job_db_inx", sa.Numeric(precision=20, scale=0), nullable=True),
        sa.Column("job_name", sa.Text(), nullable=True),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "partition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("qos_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("group_name", sa.Text(), nullable=True),
        sa.Column("gid", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Text(), nullable=True),
        sa.Column("derived_exit_code", sa.Text(), nullable=True),
        sa.Column("submit_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("eligible_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_epoch", sa.BigInteger(), nullable=True),
        sa.Column("end_epoch", sa.BigInteger(), nullable=True),
        sa.Column("elapsed_s", sa.BigInteger(), nullable=True),
        sa.Column("time_limit_s", sa.BigInteger(), nullable=True),
        sa.Column("node_count", sa.BigInteger(), nullable=True),
        sa.Column("nodes", sa.Text(), nullable=True),
        sa.Column("cpus", sa.BigInteger(), nullable=True),
        sa.Column("gpus", sa.BigInteger(), nullable=True),
        sa.Column("mem_mb", sa.Float(), nullable=True),
        sa.Column("billing", sa.BigInteger(), nullable=True),
        sa.Column("shared_node", sa.Boolean(), nullable=True),
        sa.Column("energy_it_j", sa.BigInteger(), nullable=True),
        sa.Column("energy_origin", sa.Text(), nullable=False),
        sa.Column("jobcomp_energy_j", sa.BigInteger(), nullable=True),
        sa.Column("jobcomp_energy_status", sa.Text(), nullable=False),
        sa.Column("jobcomp_energy_source", sa.Text(), nullable=False),
        sa.Column("energy_reported", sa.Text(), nullable=True),
        sa.Column("energy_complete", sa.Boolean(), nullable=True),
        sa.Column("db_energy_j", sa.BigInteger(), nullable=True),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("pue_factor", sa.Float(), nullable=True),
        sa.Column("pue_source", sa.Text(), nullable=True),
        sa.Column("pue_coverage", sa.Float(), nullable=True),
        sa.Column("energy_facility_j", sa.Float(), nullable=True),
        sa.Column("co2e_g", sa.Float(), nullable=True),
        sa.Column("co2e_provider", sa.Text(), nullable=True),
        sa.Column("co2e_zone", sa.Text(), nullable=True),
        sa.Column("co2e_factor_g_per_kwh_it", sa.Float(), nullable=True),
        sa.Column("co2e_coverage", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("tariff", sa.Text(), nullable=True),
        sa.Column("footprint_computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconcile_status", sa.Text(), nullable=False),
        sa.Column("db_job_db_inx", sa.Numeric(precision=20, scale=0), nullable=True),
        sa.Column("db_account", sa.Text(), nullable=True),
        sa.Column("db_partition", sa.Text(), nullable=True),
        sa.Column("db_state", sa.Text(), nullable=True),
        sa.Column("reconcile_differences", sa.Text(), nullable=True),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconcile_attempts", sa.Integer(), nullable=False),
        sa.Column("slurm_layout", sa.Text(), nullable=True),
        sa.Column("patched", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("inserted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "energy_origin IN ('jobcomp', 'slurmdbd', 'none')",
            name=op.f("ck_fact_job_energy_origin"),
        ),
        sa.CheckConstraint(
            "reconcile_status IN ('not_checked', 'match', 'energy_filled', 'energy_corrected', 'missing_in_db', 'conflict', 'unreconciled')",
            name=op.f("ck_fact_job_reconcile_status"),
        ),
        sa.CheckConstraint("co2e_g IS NULL OR co2e_g >= 0", name=op.f("ck_fact_job_co2e_g")),
        sa.CheckConstraint(
            "energy_facility_j IS NULL OR energy_facility_j >= 0",
            name=op.f("ck_fact_job_energy_facility_j"),
        ),
        sa.CheckConstraint(
            "energy_it_j IS NULL OR energy_it_j >= 0", name=op.f("ck_fact_job_energy_it_j")
        ),
        sa.CheckConstraint(
            "pue_factor IS NULL OR pue_factor >= 1", name=op.f("ck_fact_job_pue_factor")
        ),
        sa.CheckConstraint(
            "start_epoch IS NULL OR end_epoch IS NULL OR end_epoch >= start_epoch",
            name=op.f("ck_fact_job_run_window"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["dim_account.id"], name=op.f("fk_fact_job_account_id_dim_account")
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["dim_cluster.id"], name=op.f("fk_fact_job_cluster_id_dim_cluster")
        ),
        sa.ForeignKeyConstraint(
            ["partition_id"],
            ["dim_partition.id"],
            name=op.f("fk_fact_job_partition_id_dim_partition"),
        ),
        sa.ForeignKeyConstraint(
            ["qos_id"], ["dim_qos.id"], name=op.f("fk_fact_job_qos_id_dim_qos")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["dim_user.id"], name=op.f("fk_fact_job_user_id_dim_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_job")),
        sa.UniqueConstraint("cluster_id", "job_id", "submit_epoch", name="uq_fact_job_key"),
    )
    op.create_index(op.f("ix_fact_job_account_id"), "fact_job", ["account_id"], unique=False)
    op.create_index(op.f("ix_fact_job_end_at"), "fact_job", ["end_at"], unique=False)
    op.create_index(
        op.f("ix_fact_job_reconcile_status"), "fact_job", ["reconcile_status"], unique=False
    )
    op.create_index(op.f("ix_fact_job_user_id"), "fact_job", ["user_id"], unique=False)

    op.create_table(
        "fact_job_co2e",
        sa.Column("fact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("signal", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=True),
        sa.Column("factor_g_per_kwh_it", sa.Float(), nullable=False),
        sa.Column("intensity_g_per_kwh", sa.Float(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("fallback", sa.Text(), nullable=True),
        sa.Column("estimated_share", sa.Float(), nullable=False),
        sa.Column("co2e_g", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "signal IN ('average', 'marginal')", name=op.f("ck_fact_job_co2e_signal")
        ),
        sa.CheckConstraint("co2e_g IS NULL OR co2e_g >= 0", name=op.f("ck_fact_job_co2e_co2e_g")),
        sa.CheckConstraint(
            "coverage >= 0 AND coverage <= 1", name=op.f("ck_fact_job_co2e_coverage")
        ),
        sa.ForeignKeyConstraint(
            ["fact_id"],
            ["fact_job.id"],
            name=op.f("fk_fact_job_co2e_fact_id_fact_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "fact_id", "provider", "zone", "signal", name=op.f("pk_fact_job_co2e")
        ),
    )

    # One allocation per scope (account, user or all, cluster or all) and period start.
    op.create_index(
        "uq_credit_allocation_scope",
        "credit_allocation",
        [
            "account",
            sa.text("coalesce(user_name, '')"),
            sa.text("coalesce(cluster, '')"),
            "period_start",
        ],
        unique=True,
    )
    # The credit ledger is append-only: updates and deletes are refused by the database.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'credit_ledger is append-only: % refused', TG_OP; END $$"
        )
        op.execute(
            "CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger "
            "FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only()"
        )
        op.execute(
            "CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION credit_ledger_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER credit_ledger_no_{verb.lower()} BEFORE {verb} ON credit_ledger "
                f"BEGIN SELECT RAISE(ABORT, 'credit_ledger is append-only: {verb} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER credit_ledger_no_truncate ON credit_ledger")
        op.execute("DROP TRIGGER credit_ledger_append_only ON credit_ledger")
        op.execute("DROP FUNCTION credit_ledger_append_only()")
    else:
        op.execute("DROP TRIGGER credit_ledger_no_update")
        op.execute("DROP TRIGGER credit_ledger_no_delete")
    op.drop_index("uq_credit_allocation_scope", table_name="credit_allocation")
    op.drop_table("fact_job_co2e")
    op.drop_index(op.f("ix_fact_job_user_id"), table_name="fact_job")
    op.drop_index(op.f("ix_fact_job_reconcile_status"), table_name="fact_job")
    op.drop_index(op.f("ix_fact_job_end_at"), table_name="fact_job")
    op.drop_index(op.f("ix_fact_job_account_id"), table_name="fact_job")
    op.drop_table("fact_job")
    op.drop_table("rollup_user_day")
    op.drop_table("rollup_account_month")
    op.drop_table("rollup_account_day")
    op.drop_table("dim_partition")
    op.drop_table("ts_pue")
    op.drop_index(op.f("ix_ts_meter_reading_node"), table_name="ts_meter_reading")
    op.drop_table("ts_meter_reading")
    op.drop_table("ts_carbon_intensity")
    op.drop_table("dim_user")
    op.drop_table("dim_qos")
    op.drop_table("dim_cluster")
    op.drop_table("dim_account")
    op.drop_index("ix_credit_ledger_job", table_name="credit_ledger")
    op.drop_index("ix_credit_ledger_account_created", table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_table("credit_allocation")

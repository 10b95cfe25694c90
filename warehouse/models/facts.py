"""``fact_job``: one row per job run under its natural key, and its CO2e estimates.

The natural key is ``(cluster, job_id, submit_epoch)`` as in slurmdbd. Energy keeps its
provenance: ``energy_it_j`` is what the footprint uses (``energy_origin`` says where it came
from), next to what jobcomp reported and what slurmdbd holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.models.base import Base
from warehouse.types import BigId, UInt64, UTCDateTime

ENERGY_ORIGINS = ("jobcomp", "slurmdbd", "none")
RECONCILE_STATUSES = (
    "not_checked",
    "match",
    "energy_filled",
    "energy_corrected",
    "missing_in_db",
    "conflict",
    "unreconciled",
)
#: Foreign keys declared here (and enforced on SQLite) that PostgreSQL no longer enforces
#: since revision 0003: the sink resolves every id itself, in the same transaction, and
#: ``warehouse.integrity.orphans`` checks that no row lost its target.
PG_UNENFORCED_FOREIGN_KEYS: Final = frozenset(
    {
        "fk_fact_job_cluster_id_dim_cluster",
        "fk_fact_job_user_id_dim_user",
        "fk_fact_job_account_id_dim_account",
        "fk_fact_job_partition_id_dim_partition",
        "fk_fact_job_qos_id_dim_qos",
        "fk_fact_job_co2e_fact_id_fact_job",
    }
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class FactJob(Base):
    """A finished job (``end`` or ``energy_update`` event) with its footprint."""

    __tablename__ = "fact_job"
    __table_args__ = (
        UniqueConstraint("cluster_id", "job_id", "submit_epoch", name="uq_fact_job_key"),
        CheckConstraint(_in("energy_origin", ENERGY_ORIGINS), name="energy_origin"),
        CheckConstraint(_in("reconcile_status", RECONCILE_STATUSES), name="reconcile_status"),
        CheckConstraint("energy_it_j IS NULL OR energy_it_j >= 0", name="energy_it_j"),
        CheckConstraint(
            "energy_facility_j IS NULL OR energy_facility_j >= 0", name="energy_facility_j"
        ),
        CheckConstraint("co2e_g IS NULL OR co2e_g >= 0", name="co2e_g"),
        CheckConstraint("pue_factor IS NULL OR pue_factor >= 1", name="pue_factor"),
        CheckConstraint(
            "start_epoch IS NULL OR end_epoch IS NULL OR end_epoch >= start_epoch",
            name="run_window",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Natural key.
    cluster_id: Mapped[int] = mapped_column(ForeignKey("dim_cluster.id"))
    job_id: Mapped[int] = mapped_column(BigInteger)
    submit_epoch: Mapped[int] = mapped_column(BigInteger)
    # Identity attributes.
    event: Mapped[str] = mapped_column(Text)
    record_version: Mapped[int] = mapped_column(Integer)
    array_job_id: Mapped[int | None] = mapped_column(BigInteger)
    array_task_id: Mapped[int | None] = mapped_column(BigInteger)
    het_job_id: Mapped[int | None] = mapped_column(BigInteger)
    het_job_offset: Mapped[int | None] = mapped_column(BigInteger)
    sluid: Mapped[str | None] = mapped_column(Text)
    job_db_inx: Mapped[int | None] = mapped_column(UInt64)
    job_name: Mapped[str | None] = mapped_column(Text)
    # Who and where.
    # Not indexed alone: the credit-check indexes lead with them (revision 0003).
    user_id: Mapped[int] = mapped_column(ForeignKey("dim_user.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("dim_account.id"))
    partition_id: Mapped[int] = mapped_column(ForeignKey("dim_partition.id"))
    qos_id: Mapped[int] = mapped_column(ForeignKey("dim_qos.id"))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    group_name: Mapped[str | None] = mapped_column(Text)
    gid: Mapped[int | None] = mapped_column(BigInteger)
    # Lifecycle (epochs next to timestamps: roll-ups and apportioning work in seconds).
    state: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[str | None] = mapped_column(Text)
    derived_exit_code: Mapped[str | None] = mapped_column(Text)
    submit_at: Mapped[datetime] = mapped_column(UTCDateTime)
    eligible_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    start_epoch: Mapped[int | None] = mapped_column(BigInteger)
    end_epoch: Mapped[int | None] = mapped_column(BigInteger)
    elapsed_s: Mapped[int | None] = mapped_column(BigInteger)
    time_limit_s: Mapped[int | None] = mapped_column(BigInteger)
    # Resources.
    node_count: Mapped[int | None] = mapped_column(BigInteger)
    nodes: Mapped[str | None] = mapped_column(Text)
    cpus: Mapped[int | None] = mapped_column(BigInteger)
    gpus: Mapped[int | None] = mapped_column(BigInteger)
    mem_mb: Mapped[float | None] = mapped_column(Float)
    billing: Mapped[int | None] = mapped_column(BigInteger)
    shared_node: Mapped[bool | None] = mapped_column(Boolean)
    # IT energy with provenance.
    energy_it_j: Mapped[int | None] = mapped_column(BigInteger)
    energy_origin: Mapped[str] = mapped_column(Text)
    jobcomp_energy_j: Mapped[int | None] = mapped_column(BigInteger)
    jobcomp_energy_status: Mapped[str] = mapped_column(Text)
    jobcomp_energy_source: Mapped[str] = mapped_column(Text)
    energy_reported: Mapped[str | None] = mapped_column(Text)
    energy_complete: Mapped[bool | None] = mapped_column(Boolean)
    db_energy_j: Mapped[int | None] = mapped_column(BigInteger)
    # Facility energy (PUE) and the accounting CO2e (first average-signal estimate).
    site: Mapped[str | None] = mapped_column(Text)
    pue_factor: Mapped[float | None] = mapped_column(Float)
    pue_source: Mapped[str | None] = mapped_column(Text)
    pue_coverage: Mapped[float | None] = mapped_column(Float)
    energy_facility_j: Mapped[float | None] = mapped_column(Float)
    co2e_g: Mapped[float | None] = mapped_column(Float)
    co2e_provider: Mapped[str | None] = mapped_column(Text)
    co2e_zone: Mapped[str | None] = mapped_column(Text)
    co2e_factor_g_per_kwh_it: Mapped[float | None] = mapped_column(Float)
    co2e_coverage: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(Text)
    tariff: Mapped[str | None] = mapped_column(Text)
    footprint_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reconciliation with slurmdbd.
    reconcile_status: Mapped[str] = mapped_column(Text, index=True)
    db_job_db_inx: Mapped[int | None] = mapped_column(UInt64)
    db_account: Mapped[str | None] = mapped_column(Text)
    db_partition: Mapped[str | None] = mapped_column(Text)
    db_state: Mapped[str | None] = mapped_column(Text)
    reconcile_differences: Mapped[str | None] = mapped_column(Text)  # one per line
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reconcile_attempts: Mapped[int] = mapped_column(Integer)
    # Provenance of the record and of the row.
    slurm_layout: Mapped[str | None] = mapped_column(Text)
    patched: Mapped[bool] = mapped_column(Boolean)
    content_hash: Mapped[str] = mapped_column(Text)  # what the sink compares for "unchanged"
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FactJobCo2e(Base):
    """One CO2e estimate of a job: one carbon-intensity series (provider, zone, signal)."""

    __tablename__ = "fact_job_co2e"
    __table_args__ = (
        CheckConstraint("signal IN ('average', 'marginal')", name="signal"),
        CheckConstraint("coverage >= 0 AND coverage <= 1", name="coverage"),
        CheckConstraint("co2e_g IS NULL OR co2e_g >= 0", name="co2e_g"),
    )

    fact_id: Mapped[int] = mapped_column(
        ForeignKey("fact_job.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    zone: Mapped[str] = mapped_column(Text, primary_key=True)
    signal: Mapped[str] = mapped_column(Text, primary_key=True)
    basis: Mapped[str | None] = mapped_column(Text)
    factor_g_per_kwh_it: Mapped[float] = mapped_column(Float)
    intensity_g_per_kwh: Mapped[float] = mapped_column(Float)
    coverage: Mapped[float] = mapped_column(Float)
    fallback: Mapped[str | None] = mapped_column(Text)
    estimated_share: Mapped[float] = mapped_column(Float)
    co2e_g: Mapped[float | None] = mapped_column(Float)

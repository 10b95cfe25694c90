"""Report inputs read from the warehouse: ``fact_job`` rows and ``ts_meter_reading`` series.

A shell: SQLAlchemy selects with bound parameters, rows handed to the pure report as
``JobEnergy`` records and as a meter table in the documented columns (``meters.py``).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, select

from warehouse.models import DimAccount, DimCluster, DimPartition, DimUser, FactJob, MeterReading
from warehouse.reports.jobs import JobEnergy, JobEnergyStatus
from warehouse.reports.quality import QualityIssue


def job_energies_from_warehouse(
    engine: Engine, start_at: datetime, end_at: datetime
) -> tuple[list[JobEnergy], list[QualityIssue]]:
    """Finished jobs whose run overlaps ``[start_at, end_at]``, with the energy the warehouse
    accounts them with (``energy_it_j``: jobcomp, or slurmdbd when reconciliation filled it)."""
    from schemas.hostlist import HostlistError, expand_hostlist

    stmt = (
        select(
            FactJob.job_id,
            FactJob.submit_epoch,
            FactJob.start_at,
            FactJob.end_at,
            FactJob.nodes,
            FactJob.energy_it_j,
            FactJob.jobcomp_energy_status,
            FactJob.energy_complete,
            FactJob.shared_node,
            DimCluster.name.label("cluster"),
            DimPartition.name.label("partition"),
            DimUser.name.label("user"),
            DimAccount.name.label("account"),
        )
        .join(DimCluster, FactJob.cluster_id == DimCluster.id)
        .join(DimPartition, FactJob.partition_id == DimPartition.id)
        .join(DimUser, FactJob.user_id == DimUser.id)
        .join(DimAccount, FactJob.account_id == DimAccount.id)
        .where(FactJob.event == "end")
        .where(FactJob.end_at >= start_at)
        .where(FactJob.start_at <= end_at)
        .order_by(FactJob.end_at, FactJob.id)
    )
    jobs: list[JobEnergy] = []
    issues: list[QualityIssue] = []
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            key = f"{row.cluster}:{row.job_id}:{row.submit_epoch}"
            try:
                nodes = tuple(expand_hostlist(row.nodes))
            except HostlistError as exc:
                issues.append(
                    QualityIssue(kind="invalid_job", subject=f"job {key}", detail=f"nodes: {exc}")
                )
                continue
            status: JobEnergyStatus
            if row.energy_it_j is not None:
                status = "zero" if row.energy_it_j == 0 else "measured"
            else:
                status = "invalid" if row.jobcomp_energy_status == "invalid" else "missing"
            jobs.append(
                JobEnergy(
                    key=key,
                    job_id=row.job_id,
                    partition=row.partition,
                    nodes=nodes,
                    start_s=row.start_at.timestamp(),
                    end_s=row.end_at.timestamp(),
                    energy_j=None if row.energy_it_j is None else float(row.energy_it_j),
                    status=status,
                    complete=row.energy_complete,
                    exclusive=None if row.shared_node is None else not row.shared_node,
                    user=row.user,
                    account=row.account,
                )
            )
    return jobs, issues


def meters_from_warehouse(
    engine: Engine, start_at: datetime, end_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Meter readings in ``[start_at, end_at]`` as a meter table, and the node -> rack -> room
    mapping the node readings carry. A reading's level is ``node`` when it names a node,
    ``rack`` when it names only a rack, else ``facility`` (its room). The table has no
    counter maximum, so a counter going back reads as a reset."""
    stmt = (
        select(
            MeterReading.ts,
            MeterReading.meter_id,
            MeterReading.node,
            MeterReading.rack,
            MeterReading.room,
            MeterReading.power_w,
            MeterReading.energy_j,
            MeterReading.source,
        )
        .where(MeterReading.ts >= start_at)
        .where(MeterReading.ts <= end_at)
        .order_by(MeterReading.ts, MeterReading.id)
    )
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(stmt).mappings().all())
    columns = ["timestamp", "level", "meter_id", "source", "power_w", "energy_j"]
    if rows.empty:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=["node", "rack", "room"])
    level = rows["node"].notna().map({True: "node", False: ""})
    level = level.where(level != "", rows["rack"].notna().map({True: "rack", False: "facility"}))
    meter = rows["node"].fillna(rows["rack"]).fillna(rows["room"]).fillna(rows["meter_id"])
    table = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(rows["ts"], utc=True),
            "level": level,
            "meter_id": meter,
            "source": rows["source"],
            "power_w": rows["power_w"].astype("float64"),
            "energy_j": rows["energy_j"].astype("float64"),
        }
    )
    nodes = rows[rows["node"].notna() & rows["rack"].notna() & rows["room"].notna()]
    mapping = nodes[["node", "rack", "room"]].drop_duplicates().reset_index(drop=True)
    return table, mapping

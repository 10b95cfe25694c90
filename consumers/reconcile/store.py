"""Shell: read back from the warehouse the facts the reconcile sweep should look at again.

Rebuilds each ``fact_job`` row (with its dimensions and ``fact_job_co2e`` estimates) as the
``JobFact`` the sink stored, so the sweep can reconcile it and land it again through
``warehouse.sink.writer.write_facts`` (roll-ups move by the difference; the CO2e follows the
new energy through the stored factors, ``schemas.fact.with_energy``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Engine

from schemas.fact import Co2eEstimate, Footprint, JobFact, Reconciliation
from schemas.job import EnergySource, EnergyStatus, JobRecord
from warehouse.models import (
    NONE,
    DimAccount,
    DimCluster,
    DimPartition,
    DimQos,
    DimUser,
    FactJob,
    FactJobCo2e,
    table_of,
)

#: What the sweep reconciles again: not yet reconciled, or no row when last checked.
SWEEP_STATUSES: Final = ("not_checked", "unreconciled", "missing_in_db")

_FACT = table_of(FactJob)
_CO2E = table_of(FactJobCo2e)


def _dim(value: str | None) -> str | None:
    return None if value in (None, NONE) else value


def load_sweep_facts(
    engine: Engine,
    since: datetime,
    until: datetime | None = None,
    statuses: Collection[str] = SWEEP_STATUSES,
    limit: int = 100_000,
) -> list[JobFact]:
    """Facts that ended in ``[since, until)`` whose status is in ``statuses``."""
    cluster = table_of(DimCluster)
    user = table_of(DimUser)
    account = table_of(DimAccount)
    partition = table_of(DimPartition)
    qos = table_of(DimQos)
    query = (
        sa.select(
            _FACT,
            cluster.c.name.label("dim_cluster"),
            user.c.name.label("dim_user"),
            account.c.name.label("dim_account"),
            account.c.lineage.label("dim_lineage"),
            partition.c.name.label("dim_partition"),
            qos.c.name.label("dim_qos"),
        )
        .join(cluster, cluster.c.id == _FACT.c.cluster_id)
        .join(user, user.c.id == _FACT.c.user_id)
        .join(account, account.c.id == _FACT.c.account_id)
        .join(partition, partition.c.id == _FACT.c.partition_id)
        .join(qos, qos.c.id == _FACT.c.qos_id)
        .where(_FACT.c.reconcile_status.in_(list(statuses)), _FACT.c.end_at >= since)
        .order_by(_FACT.c.end_at, _FACT.c.id)
        .limit(limit)
    )
    if until is not None:
        query = query.where(_FACT.c.end_at < until)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        estimates = _estimates(conn, [int(r["id"]) for r in rows])
    return [fact_from_row(r, estimates.get(int(r["id"]), ())) for r in rows]


def _estimates(conn: sa.Connection, ids: Sequence[int]) -> dict[int, tuple[Co2eEstimate, ...]]:
    out: dict[int, list[Co2eEstimate]] = {}
    for i in range(0, len(ids), 1000):
        query = sa.select(_CO2E).where(_CO2E.c.fact_id.in_(ids[i : i + 1000]))
        for r in conn.execute(query).mappings():
            out.setdefault(int(r["fact_id"]), []).append(
                Co2eEstimate(
                    provider=r["provider"],
                    zone=r["zone"],
                    signal=r["signal"],
                    basis=r["basis"],
                    factor_g_per_kwh_it=r["factor_g_per_kwh_it"],
                    intensity_g_per_kwh=r["intensity_g_per_kwh"],
                    coverage=r["coverage"],
                    fallback=r["fallback"],
                    estimated_share=r["estimated_share"],
                    co2e_g=r["co2e_g"],
                )
            )
    # The accounting (first average) estimate first, as the sink chose it.
    return {
        k: tuple(sorted(v, key=lambda e: (e.signal != "average", e.provider, e.zone)))
        for k, v in out.items()
    }


def fact_from_row(r: Any, estimates: Sequence[Co2eEstimate] = ()) -> JobFact:
    """One ``fact_job`` row (with dimension names) as the ``JobFact`` the sink stored."""
    record = JobRecord(
        cluster=_dim(r["dim_cluster"]),
        job_id=int(r["job_id"]),
        submit_time=r["submit_at"],
        event=r["event"],
        record_version=r["record_version"],
        array_job_id=r["array_job_id"],
        array_task_id=r["array_task_id"],
        het_job_id=r["het_job_id"],
        het_job_offset=r["het_job_offset"],
        sluid=r["sluid"],
        job_db_inx=None if r["job_db_inx"] is None else int(r["job_db_inx"]),
        user=_dim(r["dim_user"]),
        user_id=r["uid"],
        group=r["group_name"],
        group_id=r["gid"],
        account=_dim(r["dim_account"]),
        parent_accounts=r["dim_lineage"],
        qos=_dim(r["dim_qos"]),
        partition=_dim(r["dim_partition"]),
        job_name=r["job_name"],
        state=r["state"],
        exit_code=r["exit_code"],
        derived_exit_code=r["derived_exit_code"],
        eligible_time=r["eligible_at"],
        start_time=r["start_at"],
        end_time=r["end_at"],
        elapsed_s=r["elapsed_s"],
        time_limit_s=r["time_limit_s"],
        nodes=r["nodes"],
        node_count=r["node_count"],
        cpus=r["cpus"],
        mem_mb=r["mem_mb"],
        gpus=r["gpus"],
        billing=r["billing"],
        energy_j=r["jobcomp_energy_j"],
        energy_status=EnergyStatus(r["jobcomp_energy_status"]),
        energy_source=EnergySource(r["jobcomp_energy_source"]),
        energy_reported=r["energy_reported"],
        energy_complete=r["energy_complete"],
        slurm_layout=r["slurm_layout"],
        patched=bool(r["patched"]),
    )
    footprint = None
    if r["site"] is not None:
        footprint = Footprint(
            site=r["site"],
            pue_factor=r["pue_factor"],
            pue_source=r["pue_source"],
            pue_coverage=r["pue_coverage"],
            energy_facility_j=r["energy_facility_j"],
            estimates=tuple(estimates),
            cost=r["cost"],
            currency=r["currency"],
            tariff=r["tariff"],
            computed_at=r["footprint_computed_at"],
        )
    differences = r["reconcile_differences"]
    return JobFact(
        record=record,
        energy_it_j=r["energy_it_j"],
        energy_origin=r["energy_origin"],
        footprint=footprint,
        reconciliation=Reconciliation(
            status=r["reconcile_status"],
            db_energy_j=r["db_energy_j"],
            db_job_db_inx=None if r["db_job_db_inx"] is None else int(r["db_job_db_inx"]),
            db_account=r["db_account"],
            db_partition=r["db_partition"],
            db_state=r["db_state"],
            differences=tuple(differences.split("\n")) if differences else (),
            checked_at=r["reconciled_at"],
            attempts=r["reconcile_attempts"],
        ),
        shared_node=r["shared_node"],
    )


def stored_keys(
    engine: Engine, cluster: str, keys: Collection[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which ``(job_id, submit_epoch)`` of ``cluster`` the warehouse already holds."""
    dim = table_of(DimCluster)
    wanted = sorted(set(keys))
    found: set[tuple[int, int]] = set()
    with engine.connect() as conn:
        cluster_id = conn.execute(sa.select(dim.c.id).where(dim.c.name == cluster)).scalar()
        if cluster_id is None:
            return found
        for i in range(0, len(wanted), 500):
            ids = sorted({job_id for job_id, _ in wanted[i : i + 500]})
            query = sa.select(_FACT.c.job_id, _FACT.c.submit_epoch).where(
                _FACT.c.cluster_id == cluster_id, _FACT.c.job_id.in_(ids)
            )
            found.update((int(j), int(s)) for j, s in conn.execute(query))
    return found & set(wanted)

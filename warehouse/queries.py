"""Read-side queries behind ``jobcarbon jobs`` and ``jobcarbon usage`` (bound parameters only).

Who may see what is decided by the caller (the credit API shows users their own data);
these functions filter as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

from sqlalchemy import Connection, func, select

from warehouse.models import (
    DimAccount,
    DimCluster,
    DimUser,
    FactJob,
    FactJobCo2e,
    RollupAccountDay,
    RollupUserDay,
)

J_PER_KWH: Final = 3_600_000.0


@dataclass(frozen=True, slots=True)
class JobLine:
    """One job as ``jobcarbon jobs`` prints it."""

    cluster: str
    job_id: int
    user: str
    account: str
    end_at: datetime | None
    elapsed_s: int | None
    energy_it_kwh: float | None
    energy_facility_kwh: float | None
    co2e_g: dict[str, float | None]  # "provider/signal" -> grams


def list_jobs(
    conn: Connection,
    *,
    since: datetime,
    user: str | None = None,
    account: str | None = None,
    limit: int = 10_000,
) -> list[JobLine]:
    """Jobs that ended at or after ``since`` (of ``user``/``account`` when given), oldest
    first, with every CO2e estimate."""
    query = (
        select(
            FactJob.id,
            DimCluster.name,
            FactJob.job_id,
            DimUser.name,
            DimAccount.name,
            FactJob.end_at,
            FactJob.elapsed_s,
            FactJob.energy_it_j,
            FactJob.energy_facility_j,
        )
        .join(DimCluster, DimCluster.id == FactJob.cluster_id)
        .join(DimUser, DimUser.id == FactJob.user_id)
        .join(DimAccount, DimAccount.id == FactJob.account_id)
        .where(FactJob.end_at >= since)
        .order_by(FactJob.end_at, FactJob.job_id)
        .limit(limit)
    )
    if user is not None:
        query = query.where(DimUser.name == user)
    if account is not None:
        query = query.where(DimAccount.name == account)
    rows = conn.execute(query).all()
    estimates: dict[int, dict[str, float | None]] = {}
    ids = [row[0] for row in rows]
    for i in range(0, len(ids), 500):
        co2e = select(
            FactJobCo2e.fact_id, FactJobCo2e.provider, FactJobCo2e.signal, FactJobCo2e.co2e_g
        ).where(FactJobCo2e.fact_id.in_(ids[i : i + 500]))
        for fact_id, provider, signal, grams in conn.execute(co2e):
            estimates.setdefault(fact_id, {})[f"{provider}/{signal}"] = grams
    return [
        JobLine(
            cluster=cluster,
            job_id=job_id,
            user=user_name,
            account=account_name,
            end_at=end_at,
            elapsed_s=elapsed_s,
            energy_it_kwh=None if energy is None else energy / J_PER_KWH,
            energy_facility_kwh=None if facility is None else facility / J_PER_KWH,
            co2e_g=estimates.get(fact_id, {}),
        )
        for fact_id, cluster, job_id, user_name, account_name, end_at, elapsed_s, energy, facility
        in rows
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Totals of one user or account over the days since a date (from the day roll-ups)."""

    name: str
    jobs: int
    core_hours: float
    energy_it_kwh: float
    energy_facility_kwh: float
    co2e_kg: float
    energy_coverage: float | None  # share of core-hours with measured energy


def usage(
    conn: Connection, *, by: Literal["user", "account"], since: date, name: str | None = None
) -> list[UsageLine]:
    """Totals per user or account over UTC days ``>= since``, largest CO2e first.

    Runtime-proportional measures of jobs that span ``since`` count only their share after
    it; jobs are counted on the day they ended (the roll-up rule).
    """
    if by == "user":
        table, dim, key = RollupUserDay, DimUser, RollupUserDay.user_id
    else:
        table, dim, key = RollupAccountDay, DimAccount, RollupAccountDay.account_id  # type: ignore[assignment]
    core_hours = func.sum(table.core_hours)
    query = (
        select(
            dim.name,
            func.sum(table.jobs),
            core_hours,
            func.sum(table.energy_it_j),
            func.sum(table.energy_facility_j),
            func.sum(table.co2e_g),
            func.sum(table.core_hours_with_energy),
        )
        .join(dim, dim.id == key)
        .where(table.day >= since)
        .group_by(dim.name)
        .order_by(func.sum(table.co2e_g).desc(), dim.name)
    )
    if name is not None:
        query = query.where(dim.name == name)
    return [
        UsageLine(
            name=row[0],
            jobs=int(row[1] or 0),
            core_hours=float(row[2] or 0),
            energy_it_kwh=float(row[3] or 0) / J_PER_KWH,
            energy_facility_kwh=float(row[4] or 0) / J_PER_KWH,
            co2e_kg=float(row[5] or 0) / 1000.0,
            energy_coverage=float(row[6]) / float(row[2]) if row[2] else None,
        )
        for row in conn.execute(query)
    ]

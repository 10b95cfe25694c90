"""Roll-ups: user x day, account x day, account x month (UTC periods).

Apportioning rule (one place: ``warehouse.apportion``): a job's runtime-proportional
measures (runtime, core-hours, GPU-hours, IT and facility energy, CO2e, cost) are split
across periods by the share of its run ``[start, end)`` that falls in each; a job that did
not run (no start, or ``end == start``) puts everything in the period of its end (or start,
or submit). Job counts (``jobs``, ``jobs_with_energy``...) go to the period the job ended in.
Each roll-up row is therefore the exact sum over its facts (see ``docs/warehouse.md``).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Float, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.models.base import Base

#: Measures every roll-up carries, in order: counts (int) then apportioned sums.
COUNT_MEASURES = (
    "jobs",
    "jobs_with_energy",
    "jobs_missing_energy",
    "jobs_invalid_energy",
    "jobs_with_co2e",
    "jobs_unreconciled",
)
SUM_MEASURES = (
    "runtime_s",
    "core_hours",
    "core_hours_with_energy",
    "gpu_hours",
    "energy_it_j",
    "energy_facility_j",
    "co2e_g",
    "cost",
)
MEASURES = COUNT_MEASURES + SUM_MEASURES


class _Measures:
    jobs: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_with_energy: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_missing_energy: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_invalid_energy: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_with_co2e: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_unreconciled: Mapped[int] = mapped_column(BigInteger, default=0)
    runtime_s: Mapped[float] = mapped_column(Float, default=0.0)
    core_hours: Mapped[float] = mapped_column(Float, default=0.0)
    core_hours_with_energy: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_hours: Mapped[float] = mapped_column(Float, default=0.0)
    energy_it_j: Mapped[float] = mapped_column(Float, default=0.0)
    energy_facility_j: Mapped[float] = mapped_column(Float, default=0.0)
    co2e_g: Mapped[float] = mapped_column(Float, default=0.0)  # accounting (average signal)
    cost: Mapped[float] = mapped_column(Float, default=0.0)


class RollupUserDay(_Measures, Base):
    """Per user and UTC day."""

    __tablename__ = "rollup_user_day"
    user_id: Mapped[int] = mapped_column(ForeignKey("dim_user.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class RollupAccountDay(_Measures, Base):
    """Per account and UTC day."""

    __tablename__ = "rollup_account_day"
    account_id: Mapped[int] = mapped_column(ForeignKey("dim_account.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class RollupAccountMonth(_Measures, Base):
    """Per account and UTC month (``month`` is its first day)."""

    __tablename__ = "rollup_account_month"
    account_id: Mapped[int] = mapped_column(ForeignKey("dim_account.id"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)

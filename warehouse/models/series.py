"""Time series: grid carbon intensity (versioned), PUE, machine-room meter readings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.models.base import Base
from warehouse.types import BigId, UTCDateTime


class CarbonIntensity(Base):
    """One interval of one carbon-intensity series, one version of it.

    A revision (a provider re-publishes an estimate as actual, say) is a new row with the
    next ``version``; older versions stay for audit. ``v_carbon_intensity_latest`` holds the
    latest version of every interval. ``basis`` is ``lifecycle``, ``direct`` or
    ``unspecified`` (never NULL, so the key stays unique).
    """

    __tablename__ = "ts_carbon_intensity"
    __table_args__ = (
        UniqueConstraint(
            "provider",
            "zone",
            "signal",
            "basis",
            "interval_start",
            "version",
            name="uq_ts_carbon_intensity_version",
        ),
        CheckConstraint("signal IN ('average', 'marginal')", name="signal"),
        CheckConstraint("basis IN ('lifecycle', 'direct', 'unspecified')", name="basis"),
        CheckConstraint("interval_end > interval_start", name="interval"),
        CheckConstraint("value_g_per_kwh >= 0", name="value"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    zone: Mapped[str] = mapped_column(Text)
    signal: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text)
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_end: Mapped[datetime] = mapped_column(UTCDateTime)
    value_g_per_kwh: Mapped[float] = mapped_column(Float)
    is_estimated: Mapped[bool] = mapped_column(Boolean)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)  # URL, file or API the value came from


class PueInterval(Base):
    """Measured (or declared) PUE of a site over an interval: power or the ratio."""

    __tablename__ = "ts_pue"
    __table_args__ = (
        UniqueConstraint("site", "interval_start", "source", name="uq_ts_pue_interval"),
        CheckConstraint("interval_end > interval_start", name="interval"),
        CheckConstraint("pue IS NULL OR pue >= 1", name="pue"),
        CheckConstraint(
            "pue IS NOT NULL OR (it_power_w > 0 AND total_power_w >= it_power_w)",
            name="power_or_pue",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site: Mapped[str] = mapped_column(Text)
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_end: Mapped[datetime] = mapped_column(UTCDateTime)
    it_power_w: Mapped[float | None] = mapped_column(Float)
    total_power_w: Mapped[float | None] = mapped_column(Float)
    pue: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MeterReading(Base):
    """One reading of a machine-room meter: instantaneous power and/or an energy counter."""

    __tablename__ = "ts_meter_reading"
    __table_args__ = (
        UniqueConstraint("meter_id", "ts", "source", name="uq_ts_meter_reading"),
        CheckConstraint("power_w IS NOT NULL OR energy_j IS NOT NULL", name="value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[str] = mapped_column(Text)
    node: Mapped[str | None] = mapped_column(Text, index=True)
    rack: Mapped[str | None] = mapped_column(Text)
    room: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    power_w: Mapped[float | None] = mapped_column(Float)
    energy_j: Mapped[float | None] = mapped_column(Float)  # monotonic counter
    source: Mapped[str] = mapped_column(Text)

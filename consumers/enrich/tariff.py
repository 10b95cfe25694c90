"""Time-of-use electricity prices as a piecewise series, integrated like intensity.

A tariff gives a price per facility kWh by local hour of the site; turned into one
pseudo-point per local hour it goes through the same exact integration, so
``cost = energy_it_kwh * sum_i share_i * pue_i * price_i``. Local hours are converted to UTC
with the site's time zone, so daylight-saving days have 23 or 25 hours as they should.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from consumers.enrich.model import IntensityPoint
from jobcarbon.settings import TariffSettings


class TariffError(ValueError):
    """A tariff that leaves an hour without a price."""


def price_at_hour(tariff: TariffSettings, hour: int) -> float:
    """Price per kWh at a local hour (first matching period)."""
    for period in tariff.periods:
        if period.start_hour <= hour < period.end_hour:
            return period.price_per_kwh
    raise TariffError(f"tariff {tariff.name!r} has no price for local hour {hour}")


def tariff_price_points(
    tariff: TariffSettings, start: datetime, end: datetime
) -> list[IntensityPoint]:
    """One point per UTC hour-slice of constant local hour over ``[start, end)``."""
    zone = ZoneInfo(tariff.timezone)
    # Start on a local-hour boundary (zones with half-hour offsets shift it off UTC hours).
    t = start.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    points = []
    while t < end:
        nxt = t + timedelta(hours=1)
        local_hour = t.astimezone(zone).hour
        points.append(
            IntensityPoint(
                provider=f"tariff:{tariff.name}",
                zone=tariff.timezone,
                signal="average",
                basis=None,
                start_at=t,
                end_at=nxt,
                value_g_per_kwh=price_at_hour(tariff, local_hour),
            )
        )
        t = nxt
    return points

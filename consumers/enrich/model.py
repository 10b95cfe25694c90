"""The time-series model every provider parser produces and every integration reads.

An ``IntensityPoint`` is one provider value for one zone over one half-open interval
``[start_at, end_at)`` (aware UTC). Values are never zero-filled: a missing or null value is a
``Rejected`` entry naming where it came from, and structural problems raise ``SeriesError``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.fact import Basis, Signal

#: WattTime and US tools report pounds of CO2 per MWh; 1 lb/MWh = 0.45359237 g/kWh.
G_PER_KWH_PER_LBS_PER_MWH = 0.45359237


class SeriesError(ValueError):
    """A payload that cannot be read at all (truncated, wrong shape); the message names the
    field and value."""


class IntensityPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One carbon-intensity value for a zone over ``[start_at, end_at)``."""

    provider: str
    zone: str
    signal: Signal
    basis: Basis | None
    start_at: datetime
    end_at: datetime
    value_g_per_kwh: float
    is_estimated: bool = False
    fetched_at: datetime | None = None
    updated_at: datetime | None = None  # the provider's own revision stamp, when it has one


class PuePoint(msgspec.Struct, frozen=True, kw_only=True):
    """Measured PUE of a site over ``[start_at, end_at)``: total facility power / IT power."""

    site: str
    start_at: datetime
    end_at: datetime
    pue: float
    source: str = "measured"
    fetched_at: datetime | None = None


class AnnualFactor(msgspec.Struct, frozen=True, kw_only=True):
    """A yearly (or undated, ``year=None``) average intensity for a zone: the fallback behind
    the time series, and the static per-zone factors."""

    provider: str
    zone: str
    year: int | None
    value_g_per_kwh: float
    basis: Basis | None = "lifecycle"
    source: str = ""
    aggregate: bool = False  # a region/continent/world aggregate, not a country
    name: str | None = None


class Rejected(msgspec.Struct, frozen=True):
    """One value a parser could not use, and why (for a dead-letter file or log)."""

    where: str  # e.g. "history[3].carbonIntensity" or "line 7 column 'Taux de CO2 (g/kWh)'"
    reason: str


class Parsed(msgspec.Struct, frozen=True):
    """What a parser read: good points (sorted by start) and the values it rejected."""

    points: tuple[IntensityPoint, ...]
    rejected: tuple[Rejected, ...] = ()

    def strict(self) -> tuple[IntensityPoint, ...]:
        """The points, or SeriesError if any value was rejected."""
        if self.rejected:
            first = self.rejected[0]
            more = f" (and {len(self.rejected) - 1} more)" if len(self.rejected) > 1 else ""
            raise SeriesError(f"{first.where}: {first.reason}{more}")
        return self.points


def parse_utc(value: Any, where: str) -> datetime:
    """An ISO 8601 timestamp with a zone (``Z`` or an offset) as aware UTC; a naive or
    malformed value raises SeriesError naming ``where``."""
    if not isinstance(value, str):
        raise SeriesError(f"{where}: expected an ISO 8601 timestamp, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SeriesError(f"{where}: not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise SeriesError(f"{where}: timestamp {value!r} has no time zone")
    return parsed.astimezone(UTC)


def intensity_value(value: Any, where: str, scale: float = 1.0) -> float | Rejected:
    """A finite, non-negative number (times ``scale``), or a ``Rejected`` naming the value."""
    if value is None:
        return Rejected(where, "value is null")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return Rejected(where, f"not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        return Rejected(where, f"not a number: {value!r}")
    if not math.isfinite(number) or number < 0:
        return Rejected(where, f"out of range: {value!r}")
    if number > 1e5:
        return Rejected(where, f"implausible intensity: {value!r} (unit?)")
    return number * scale


def finish(points: list[IntensityPoint], rejected: list[Rejected]) -> Parsed:
    """Sort by start; two different values for the same interval is a payload error."""
    points.sort(key=lambda p: (p.zone, p.signal, p.start_at))
    kept: list[IntensityPoint] = []
    for point in points:
        if point.end_at <= point.start_at:
            raise SeriesError(f"interval {point.start_at.isoformat()} has end <= start")
        last = kept[-1] if kept else None
        if last is not None and (last.zone, last.signal, last.start_at) == (
            point.zone,
            point.signal,
            point.start_at,
        ):
            if last.value_g_per_kwh != point.value_g_per_kwh:
                rejected.append(
                    Rejected(
                        f"{point.zone} {point.start_at.isoformat()}",
                        f"two values for one interval: {last.value_g_per_kwh} and "
                        f"{point.value_g_per_kwh}",
                    )
                )
            continue
        kept.append(point)
    return Parsed(tuple(kept), tuple(rejected))


def hours(n: float) -> timedelta:
    """``n`` hours as a timedelta (readability in parsers)."""
    return timedelta(hours=n)

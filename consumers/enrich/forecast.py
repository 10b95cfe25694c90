"""Intensity forecasts for the submission-time credit check.

Pure core: ``forecast`` overlays, in priority order, the provider's own forecast (or actual
values when the window is already covered), then *persistence* forecasts built from history
(the same time one day earlier, then one week earlier). Each layer only fills what the
layers before it left uncovered; the result says which share of the window each method
covered. ``integrate`` then turns the points into the expected factor for a planned job
(uncovered time falls back to the annual/default value there, as for past jobs).

Thin loader: ``forecast_from_lookup`` reads the window and the history from an
``IntensityLookup`` (the stream worker's state or one filled from the warehouse).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import msgspec

from consumers.enrich.lookup import IntensityLookup
from consumers.enrich.model import IntensityPoint
from schemas.fact import Signal

DAY: Final = timedelta(days=1)
WEEK: Final = timedelta(days=7)


class Forecast(NamedTuple):
    """Points covering (part of) a window, and the share of the window per method."""

    points: tuple[IntensityPoint, ...]
    shares: dict[str, float]  # "provider", "persistence-1d", "persistence-7d"

    @property
    def coverage(self) -> float:
        """Share of the window with a forecast value."""
        return sum(self.shares.values())


def persistence(
    history: Sequence[IntensityPoint], start: datetime, end: datetime, lag: timedelta
) -> list[IntensityPoint]:
    """History shifted forward by ``lag``, kept where it overlaps ``[start, end)``; every
    shifted point is estimated."""
    out = []
    for p in history:
        shifted_start, shifted_end = p.start_at + lag, p.end_at + lag
        if shifted_end > start and shifted_start < end:
            out.append(
                msgspec.structs.replace(
                    p, start_at=shifted_start, end_at=shifted_end, is_estimated=True
                )
            )
    return out


def overlay(
    layers: Sequence[tuple[str, Sequence[IntensityPoint]]], start: datetime, end: datetime
) -> Forecast:
    """Points from each layer clipped to what earlier layers left uncovered in the window."""
    covered: list[tuple[datetime, datetime]] = []
    points: list[IntensityPoint] = []
    seconds: dict[str, float] = {}
    for name, layer in layers:
        added: list[tuple[datetime, datetime]] = []
        for p in sorted(layer, key=lambda x: x.start_at):
            for a, b in _uncovered(max(p.start_at, start), min(p.end_at, end), covered + added):
                points.append(msgspec.structs.replace(p, start_at=a, end_at=b))
                added.append((a, b))
                seconds[name] = seconds.get(name, 0.0) + (b - a).total_seconds()
        covered = sorted(covered + added)
    total = (end - start).total_seconds()
    shares = {k: v / total for k, v in seconds.items()} if total > 0 else {}
    return Forecast(tuple(sorted(points, key=lambda x: x.start_at)), shares)


def forecast(
    provider_points: Sequence[IntensityPoint],
    history: Sequence[IntensityPoint],
    start: datetime,
    end: datetime,
    lags: Sequence[timedelta] = (DAY, WEEK),
) -> Forecast:
    """The provider's points first, then persistence for each lag in order."""
    layers: list[tuple[str, Sequence[IntensityPoint]]] = [("provider", provider_points)]
    for lag in lags:
        layers.append((f"persistence-{_label(lag)}", persistence(history, start, end, lag)))
    return overlay(layers, start, end)


def forecast_from_lookup(
    lookup: IntensityLookup,
    provider: str,
    zone: str,
    signal: Signal,
    start: datetime,
    end: datetime,
    lags: Sequence[timedelta] = (DAY, WEEK),
) -> Forecast:
    """Thin loader: the window's points (provider forecast or actuals) and the history the
    persistence layers need, from a lookup."""
    window = lookup.points(provider, zone, signal, start, end)
    history: list[IntensityPoint] = []
    if lags:
        history = list(lookup.points(provider, zone, signal, start - max(lags), end - min(lags)))
    return forecast(window, history, start, end, lags)


def _uncovered(
    a: datetime, b: datetime, covered: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    out = []
    t = a
    for c0, c1 in sorted(covered):
        if c1 <= t or c0 >= b:
            continue
        if c0 > t:
            out.append((t, c0))
        t = max(t, c1)
        if t >= b:
            break
    if t < b:
        out.append((t, b))
    return out


def _label(lag: timedelta) -> str:
    if lag % DAY == timedelta(0):
        return f"{lag // DAY}d"
    return f"{int(lag.total_seconds())}s"

"""The greener start: the begin time within the allowed delay that minimizes a job's CO2e
under an intensity forecast (pure).

With a piecewise-constant forecast, a job's CO2e as a function of its start ``s`` is
piecewise linear, with breakpoints where ``s`` or ``s + runtime`` crosses a point boundary.
Its minimum over an interval therefore lies at one of those breakpoints or at an end of the
interval: scanning them is scanning every candidate start exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.fact import J_PER_KWH


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """Carbon intensity over [start_at, end_at) in gCO2e/kWh (aware UTC)."""

    start_at: datetime
    end_at: datetime
    intensity_g_per_kwh: float


@dataclass(frozen=True, slots=True)
class GreenerStart:
    """The best start found, its CO2e and what starting now would emit."""

    begin_at: datetime
    delay_s: int
    sbatch_begin: str | None  # "now+N" (N seconds); None when starting now is best
    co2e_g: float
    co2e_now_g: float
    intensity_g_per_kwh: float  # mean intensity over the run at the best start

    @property
    def co2e_saved_g(self) -> float:
        """CO2e avoided by waiting (0 when starting now is best)."""
        return self.co2e_now_g - self.co2e_g


def _points(forecast: Iterable[ForecastPoint]) -> list[ForecastPoint]:
    points = sorted(forecast, key=lambda p: p.start_at)
    for a, b in itertools.pairwise(points):
        if b.start_at < a.end_at:
            raise ValueError(f"forecast points overlap at {b.start_at.isoformat()}")
    for p in points:
        if not p.end_at > p.start_at or not math.isfinite(p.intensity_g_per_kwh):
            raise ValueError(f"forecast point at {p.start_at.isoformat()} is not usable")
    return points


def mean_intensity(
    points: Sequence[ForecastPoint], start_at: datetime, runtime_s: float
) -> tuple[float, float]:
    """(time-weighted mean intensity over [start, start + runtime), covered share 0..1).
    Gaps between points are not counted (the covered share says how much is known)."""
    end_at = start_at + timedelta(seconds=runtime_s)
    weighted = covered = 0.0
    for p in points:
        lo, hi = max(p.start_at, start_at), min(p.end_at, end_at)
        if hi > lo:
            seconds = (hi - lo).total_seconds()
            weighted += seconds * p.intensity_g_per_kwh
            covered += seconds
    if covered == 0:
        return math.nan, 0.0
    return weighted / covered, covered / runtime_s if runtime_s > 0 else 1.0


def _co2e_g(energy_facility_j: float, intensity: float) -> float:
    return energy_facility_j / J_PER_KWH * intensity


def greener_start(
    forecast: Iterable[ForecastPoint],
    *,
    now: datetime,
    runtime_s: float,
    energy_facility_j: float,
    max_delay_s: float,
) -> GreenerStart | None:
    """Scan every candidate start in [now, now + max_delay] whose whole run the forecast
    covers, and return the one with the least CO2e (ties go to the earliest). None when the
    forecast does not cover a run starting now. Energy is spread evenly over the run."""
    points = _points(forecast)
    if runtime_s <= 0 or not points:
        return None
    now_mean, now_cover = mean_intensity(points, now, runtime_s)
    if now_cover < 1.0 - 1e-9:
        return None
    run = timedelta(seconds=runtime_s)
    latest = now + timedelta(seconds=max_delay_s)
    candidates = {now, latest}
    for p in points:
        for boundary in (p.start_at, p.end_at):
            candidates.add(boundary)
            candidates.add(boundary - run)
    best_at, best_mean = now, now_mean
    for at in sorted(c for c in candidates if now <= c <= latest):
        mean, cover = mean_intensity(points, at, runtime_s)
        if cover >= 1.0 - 1e-9 and mean < best_mean - 1e-9:
            best_at, best_mean = at, mean
    # sbatch --begin=now+N takes whole seconds: round up and price the start really used.
    delay_s = math.ceil((best_at - now).total_seconds() - 1e-6)
    begin_at = now + timedelta(seconds=delay_s)
    mean, cover = mean_intensity(points, begin_at, runtime_s)
    if cover >= 1.0 - 1e-9:
        best_mean = mean
    return GreenerStart(
        begin_at=begin_at,
        delay_s=delay_s,
        sbatch_begin=f"now+{delay_s}" if delay_s > 0 else None,
        co2e_g=_co2e_g(energy_facility_j, best_mean),
        co2e_now_g=_co2e_g(energy_facility_j, now_mean),
        intensity_g_per_kwh=best_mean,
    )

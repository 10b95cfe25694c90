"""Exact integration of carbon intensity and PUE over a job's run.

For a run ``[start, end)`` cut into elementary slices where the job's relative power, the
intensity and the PUE are all constant::

    share_i              = energy in slice i / energy of the run        (sums to 1)
    factor_g_per_kwh_it  = sum_i share_i * pue_i * intensity_i
    intensity_g_per_kwh  = sum_i share_i * intensity_i
    pue_factor           = sum_i share_i * pue_i

so ``co2e_g = energy_it_kwh * factor_g_per_kwh_it`` for any energy (``schemas.fact``).
Coverage and estimated share are energy-weighted (equal to time shares for a uniform
profile). A zero-length run takes the values at its start.

Gaps in the intensity series are filled, in this order, and reported:

1. ``nearest``: the value of the nearest point (before or after the gap, the closer one
   wins at each instant) when it lies within ``nearest_limit``;
2. ``annual``: the zone's annual average (``annual_g_per_kwh``), when known;
3. ``default``: the configured default (``settings.carbon.default_intensity_g_per_kwh``).

Gaps in a measured PUE series take the site's static PUE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.profile import UNIFORM, EnergyProfile

#: Kinds of intensity slice, from best to worst; ``fallback`` reports the worst one used.
REAL, ESTIMATED, NEAREST, ANNUAL, DEFAULT = "real", "estimated", "nearest", "annual", "default"
FALLBACK_ORDER: Final = (NEAREST, ANNUAL, DEFAULT)
ZERO_RUN_S: Final = 1e-6


class Piece(NamedTuple):
    """A constant ``value`` over ``[start_s, end_s)`` seconds from the run's start."""

    start_s: float
    end_s: float
    value: float
    kind: str


class Integration(NamedTuple):
    """One series integrated over one run."""

    factor_g_per_kwh_it: float
    intensity_g_per_kwh: float
    coverage: float  # share of the run's energy under real (provider) points
    estimated_share: float  # share under provider-estimated points (part of coverage)
    fallback: str | None  # worst fallback used: "nearest", "annual", "default" or None
    fallback_shares: dict[str, float]  # energy share filled by each fallback
    pue_factor: float
    pue_coverage: float  # share of the run's energy under measured PUE


def integrate(
    run_start: datetime,
    run_end: datetime,
    points: Sequence[IntensityPoint],
    *,
    default_g_per_kwh: float,
    annual_g_per_kwh: float | None = None,
    nearest_limit: timedelta = timedelta(hours=2),
    static_pue: float = 1.0,
    pue_points: Sequence[PuePoint] = (),
    profile: EnergyProfile = UNIFORM,
) -> Integration:
    """Integrate one intensity series (sorted or not) and the PUE over ``[run_start,
    run_end)``. Points outside the run only serve as ``nearest`` fallbacks."""
    if run_end < run_start:
        raise ValueError(f"run ends ({run_end.isoformat()}) before it starts")
    duration_s = max((run_end - run_start).total_seconds(), ZERO_RUN_S)
    power = [Piece(p.start_s, p.end_s, p.power_w, "") for p in profile.pieces(duration_s)]
    fallback_g, fallback_kind = fallback_of(default_g_per_kwh, annual_g_per_kwh)
    intervals = sorted(
        (
            (
                _rel(p.start_at, run_start),
                _rel(p.end_at, run_start),
                p.value_g_per_kwh,
                ESTIMATED if p.is_estimated else REAL,
            )
            for p in points
        ),
        key=lambda x: x[0],
    )
    intensity = fill(
        intervals, duration_s, nearest_limit.total_seconds(), fallback_g, fallback_kind
    )
    pue_intervals = sorted(
        (_rel(p.start_at, run_start), _rel(p.end_at, run_start), p.pue, REAL) for p in pue_points
    )
    pue = fill(pue_intervals, duration_s, 0.0, static_pue, DEFAULT)
    return combine(power, intensity, pue)


def fallback_of(default_g_per_kwh: float, annual_g_per_kwh: float | None) -> tuple[float, str]:
    """What fills a gap no point is near: the annual average when known, else the default
    (value in g/kWh, kind)."""
    if annual_g_per_kwh is not None:
        return annual_g_per_kwh, ANNUAL
    return default_g_per_kwh, DEFAULT


def fill(
    intervals: Sequence[tuple[float, float, float, str]],
    duration_s: float,
    nearest_s: float,
    fallback: float,
    fallback_kind: str,
) -> list[Piece]:
    """Pieces covering ``[0, duration_s)``: the intervals where they are (the earlier one
    wins an overlap), gaps filled by the nearest interval within ``nearest_s`` and then by
    ``fallback``."""
    covered: list[Piece] = []
    cursor = float("-inf")
    for start, end, value, kind in intervals:
        start = max(start, cursor)
        if end > start:
            covered.append(Piece(start, end, value, kind))
            cursor = end
    out: list[Piece] = []
    t = 0.0
    before: Piece | None = None
    index = 0
    while t < duration_s:
        while index < len(covered) and covered[index].end_s <= t:
            before = covered[index]
            index += 1
        after = covered[index] if index < len(covered) else None
        if after is not None and after.start_s <= t:  # inside a real interval
            end = min(after.end_s, duration_s)
            out.append(Piece(t, end, after.value, after.kind))
            t = end
            continue
        gap_end = min(after.start_s if after is not None else duration_s, duration_s)
        out.extend(_gap(t, gap_end, before, after, nearest_s, fallback, fallback_kind))
        t = gap_end
    return out


def _gap(
    a: float,
    b: float,
    before: Piece | None,
    after: Piece | None,
    nearest_s: float,
    fallback: float,
    fallback_kind: str,
) -> list[Piece]:
    # At instant t the nearer neighbour wins (the midpoint splits), each within nearest_s.
    mid = (before.end_s + after.start_s) / 2 if before and after else None
    left_end = a
    if before is not None and nearest_s > 0:
        left_end = min(b, before.end_s + nearest_s, mid if mid is not None else b)
    right_start = b
    if after is not None and nearest_s > 0:
        right_start = max(a, after.start_s - nearest_s, mid if mid is not None else a)
    right_start = max(right_start, left_end)
    out = []
    if before is not None and left_end > a:
        out.append(Piece(a, left_end, before.value, NEAREST))
    if right_start > left_end:
        out.append(Piece(left_end, right_start, fallback, fallback_kind))
    if after is not None and b > right_start:
        out.append(Piece(right_start, b, after.value, NEAREST))
    return out


def combine(power: list[Piece], intensity: list[Piece], pue: list[Piece]) -> Integration:
    """Energy-weighted sums over the common refinement of three piecewise functions, each
    covering ``[0, duration)`` without gaps (a sweep over their boundaries)."""
    total = weighted = weighted_i = weighted_pue = pue_measured = 0.0
    shares: dict[str, float] = {}
    ip = ii = iq = 0
    t = 0.0
    end = min(power[-1].end_s, intensity[-1].end_s, pue[-1].end_s)
    while t < end:
        p_end, p_value = power[ip][1], power[ip][2]
        i_end, i_value, i_kind = intensity[ii][1], intensity[ii][2], intensity[ii][3]
        q_end, q_value, q_kind = pue[iq][1], pue[iq][2], pue[iq][3]
        hi = min(p_end, i_end, q_end)
        energy = p_value * (hi - t)
        if energy:
            total += energy
            weighted += energy * q_value * i_value
            weighted_i += energy * i_value
            weighted_pue += energy * q_value
            shares[i_kind] = shares.get(i_kind, 0.0) + energy
            if q_kind == REAL:
                pue_measured += energy
        t = hi
        if p_end <= t:
            ip += 1
        if i_end <= t:
            ii += 1
        if q_end <= t:
            iq += 1
    return summarize(total, weighted, weighted_i, weighted_pue, shares, pue_measured)


def summarize(
    total: float,
    weighted: float,
    weighted_i: float,
    weighted_pue: float,
    shares: dict[str, float],
    pue_measured: float,
) -> Integration:
    """The integration from a run's energy-weighted sums (``total`` is its energy, ``shares``
    the energy under each kind of intensity slice): the one place that turns sums into
    factors, shares and the fallback reported."""
    if total <= 0:
        raise ValueError("the energy profile has no energy over the run")
    # Plain loops, not comprehensions: the stream calls this for every job.
    estimated = shares.get(ESTIMATED, 0.0) / total
    fallback = None
    fallback_shares = {}
    for kind in FALLBACK_ORDER:
        energy = shares.get(kind)
        if energy and energy / total > 0:
            fallback_shares[kind] = energy / total
            fallback = kind  # the worst one used
    return Integration(
        weighted / total,  # factor_g_per_kwh_it
        weighted_i / total,  # intensity_g_per_kwh
        shares.get(REAL, 0.0) / total + estimated,  # coverage
        estimated,
        fallback,
        fallback_shares,
        weighted_pue / total,  # pue_factor
        pue_measured / total,  # pue_coverage
    )


def _rel(at: datetime, origin: datetime) -> float:
    return (at - origin).total_seconds()

"""Cumulative integrals of one intensity series x one site's PUE: a run at constant power
integrated with two bisects instead of a sweep over its intervals.

The intensity gaps are filled exactly as ``integrate.fill`` fills them (nearest, then the
fallback), over the whole series rather than one run's window (the same pieces: a point
further than the nearest limit never fills anything), and the PUE gaps with the static PUE.
The two step functions are merged; for every boundary the index keeps the running totals of
the integrals ``integrate.combine`` sums, so a run ``[s, e)`` is ``F(e) - F(s)``:

====  ==========================================  =================================
col   rate over a segment                         gives
====  ==========================================  =================================
0     intensity x PUE (points and nearest)        PUE-weighted intensity
1     intensity (points and nearest)              intensity
2     PUE                                         PUE factor
3     PUE where the fallback fills                x fallback: its PUE-weighted part
4     1 where the fallback fills                  x fallback: its intensity part;
                                                  its share
5-7   1 under real / estimated / nearest          coverage, estimated share, nearest
8     1 under measured PUE                        PUE coverage
====  ==========================================  =================================

The fallback (annual or default) is per job (the annual average of its start year), hence
columns 3-4. Times are float microseconds from the index's origin: every timestamp, and every
midpoint between two, is exact (below 2**52). The totals are double-double (value, rounding
error) so that ``F(e) - F(s)`` keeps full precision however long the series: the result
agrees with ``integrate.integrate`` to float rounding (tests compare to 1e-12).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from consumers.enrich.integrate import (
    DEFAULT,
    ESTIMATED,
    NEAREST,
    REAL,
    Integration,
    Piece,
    fill,
    summarize,
)
from consumers.enrich.model import IntensityPoint, PuePoint
from schemas.fact import Basis

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US: Final = timedelta(microseconds=1)
US_PER_S: Final = 1_000_000
_FILL: Final = "fill"  # kind of the fallback-filled intensity pieces while building
_COLUMNS: Final = 9
_MAX_NEAREST_S: Final = 100 * 366 * 86_400.0

Row = tuple[float, ...]


def micros(at: datetime) -> int:
    """Whole microseconds since the Unix epoch (exact)."""
    return (at - EPOCH) // ONE_US


class StepIndex:
    """Intensity x PUE of one series and one site, ready to integrate uniform runs."""

    __slots__ = (
        "_basis",
        "_bounds",
        "_ends",
        "_hi",
        "_kinds",
        "_lo",
        "_origin_us",
        "_rates",
        "_same_until",
        "_starts",
    )

    def __init__(
        self,
        origin_us: int,
        bounds: list[float],
        rates: list[Row],
        kinds: list[tuple[str, bool]],
        points: Sequence[tuple[float, float, Basis | None]],
    ) -> None:
        self._origin_us = origin_us
        self._bounds = bounds  # segment k (1..m) is [bounds[k-1], bounds[k]); 0 and m+1 open
        self._rates = rates  # m + 2 rows
        self._kinds = kinds  # (intensity kind, PUE measured) of each segment
        self._same_until = _runs(kinds)
        widths = [bounds[k] - bounds[k - 1] for k in range(1, len(bounds))]
        # totals at the left edge of each segment (0 for segments 0 and 1), column by column
        columns = [_running(widths, [row[c] for row in rates[1:-1]]) for c in range(_COLUMNS)]
        self._hi: list[Row] = list(zip(*(hi for hi, _ in columns), strict=True))
        self._lo: list[Row] = list(zip(*(lo for _, lo in columns), strict=True))
        self._starts = [start for start, _, _ in points]  # the intensity points, same axis
        self._ends = [end for _, end, _ in points]
        bases = [basis for _, _, basis in points]
        self._basis = list(zip(bases, _runs(bases), strict=True))

    def totals(self, start: float, end: float) -> list[float]:
        """The nine integrals (columns of the module table) over ``[start, end)``."""
        bounds = self._bounds
        i = bisect.bisect_right(bounds, start)
        j = bisect.bisect_right(bounds, end)
        rates = self._rates
        if i == j:
            width = end - start
            return [r * width for r in rates[i]]
        head = bounds[i] - start
        tail = end - bounds[j - 1]
        return [
            ri * head + ((hj - hi) + (lj - li)) + rj * tail
            for ri, rj, hj, hi, lj, li in zip(
                rates[i], rates[j], self._hi[j], self._hi[i + 1], self._lo[j], self._lo[i + 1],
                strict=True,
            )
        ]  # fmt: skip

    def integrate(
        self, start_us: int, end_us: int, fallback_g: float, fallback_kind: str
    ) -> Integration:
        """The same as ``integrate.integrate`` for a uniform profile over this series and PUE,
        for a run ``[start_us, end_us)`` in microseconds since the epoch (``micros``);
        ``fallback_kind`` is ``annual`` or ``default``."""
        if end_us < start_us:
            raise ValueError(f"run ends ({end_us} us) before it starts ({start_us} us)")
        start = float(start_us - self._origin_us)
        end = float(max(end_us, start_us + 1) - self._origin_us)  # zero length: first us
        total = end - start
        bounds = self._bounds
        i = bisect.bisect_right(bounds, start)
        j = bisect.bisect_right(bounds, end)
        if self._same_until[i] > j:
            # One kind of slice over the whole run (most runs): its share is exactly 1, as
            # the sweep finds it, and only the three weighted integrals are needed.
            kind, measured = self._kinds[i]
            weighted, weighted_i, weighted_pue = self._weighted(i, j, start, end)
            if kind == _FILL:
                kind = fallback_kind
                weighted, weighted_i = fallback_g * weighted_pue, fallback_g * total
            return summarize(
                total,
                weighted,
                weighted_i,
                weighted_pue,
                {kind: total},
                total if measured else 0.0,
            )
        s = self.totals(start, end)
        return summarize(
            total,
            s[0] + fallback_g * s[3],  # weighted
            s[1] + fallback_g * s[4],  # weighted_i
            s[2],  # weighted_pue
            {REAL: s[5], ESTIMATED: s[6], NEAREST: s[7], fallback_kind: s[4]},
            s[8],  # pue_measured
        )

    def _weighted(self, i: int, j: int, start: float, end: float) -> tuple[float, float, float]:
        """Columns 0-2 over ``[start, end)`` in segments ``i..j`` (unrolled: every job)."""
        ri = self._rates[i]
        if i == j:
            width = end - start
            return ri[0] * width, ri[1] * width, ri[2] * width
        rj = self._rates[j]
        head = self._bounds[i] - start
        tail = end - self._bounds[j - 1]
        hj, hi, lj, li = self._hi[j], self._hi[i + 1], self._lo[j], self._lo[i + 1]
        return (
            ri[0] * head + ((hj[0] - hi[0]) + (lj[0] - li[0])) + rj[0] * tail,
            ri[1] * head + ((hj[1] - hi[1]) + (lj[1] - li[1])) + rj[1] * tail,
            ri[2] * head + ((hj[2] - hi[2]) + (lj[2] - li[2])) + rj[2] * tail,
        )

    def basis(self, start_us: int, end_us: int) -> Basis | None:
        """The basis shared by every point overlapping ``(start_us, end_us)``, None when
        they differ or there is none (as the stage reads it from the points)."""
        lo = bisect.bisect_right(self._ends, float(start_us - self._origin_us))
        hi = bisect.bisect_left(self._starts, float(end_us - self._origin_us))
        if lo >= hi:
            return None
        value, differs_at = self._basis[lo]
        return value if differs_at >= hi else None


def build(
    points: Sequence[IntensityPoint],
    pue_points: Sequence[PuePoint],
    *,
    nearest_s: float,
    static_pue: float,
) -> StepIndex | None:
    """The index of a series (sorted by start) and a site's PUE points (sorted by start), or
    None when points overlap (the general path resolves overlaps per run) or the nearest
    limit is so long (over a century) that microseconds would no longer be exact floats."""
    if nearest_s > _MAX_NEAREST_S:
        return None
    starts = [p.start_at for p in points] + [q.start_at for q in pue_points]
    if not starts:
        rate = _rate(Piece(0.0, 0.0, 0.0, _FILL), Piece(0.0, 0.0, static_pue, DEFAULT))
        return StepIndex(0, [], [rate], [(_FILL, False)], [])
    origin_us = micros(min(starts)) - int(nearest_s * US_PER_S) - 1
    nearest_us = nearest_s * US_PER_S
    intensity = _intervals(
        origin_us, points, lambda p: (p.value_g_per_kwh, ESTIMATED if p.is_estimated else REAL)
    )
    pue = _intervals(origin_us, pue_points, lambda q: (q.pue, REAL))
    if intensity is None or pue is None:
        return None
    ends = [iv[1] for iv in intensity[-1:]] + [iv[1] for iv in pue[-1:]]
    duration = max(ends) + nearest_us + 1.0
    i_pieces = fill(intensity, duration, nearest_us, 0.0, _FILL)
    q_pieces = fill(pue, duration, 0.0, static_pue, DEFAULT)
    outside = _rate(Piece(0.0, 0.0, 0.0, _FILL), Piece(0.0, 0.0, static_pue, DEFAULT))
    bounds = [0.0]
    rates = [outside]
    kinds = [(_FILL, False)]
    ii = iq = 0
    while ii < len(i_pieces) and iq < len(q_pieces):
        a, q = i_pieces[ii], q_pieces[iq]
        end = min(a.end_s, q.end_s)
        bounds.append(end)
        rates.append(_rate(a, q))
        kinds.append((a.kind, q.kind == REAL))
        ii += a.end_s <= end
        iq += q.end_s <= end
    rates.append(outside)
    kinds.append((_FILL, False))
    spans = [(start, end, p.basis) for (start, end, _, _), p in zip(intensity, points, strict=True)]
    return StepIndex(origin_us, bounds, rates, kinds, spans)


def _intervals(
    origin_us: int,
    items: Sequence[Any],
    value_kind: Callable[[Any], tuple[float, str]],
) -> list[tuple[float, float, float, str]] | None:
    out: list[tuple[float, float, float, str]] = []
    last_end = float("-inf")
    for item in items:
        start = float(micros(item.start_at) - origin_us)
        end = float(micros(item.end_at) - origin_us)
        if start < last_end or end <= start:
            return None
        value, kind = value_kind(item)
        out.append((start, end, value, kind))
        last_end = end
    return out


def _rate(a: Piece, q: Piece) -> Row:
    pue = q.value
    if a.kind == _FILL:
        return (0.0, 0.0, pue, pue, 1.0, 0.0, 0.0, 0.0, float(q.kind == REAL))
    value = a.value
    return (
        value * pue,
        value,
        pue,
        0.0,
        0.0,
        float(a.kind == REAL),
        float(a.kind == ESTIMATED),
        float(a.kind == NEAREST),
        float(q.kind == REAL),
    )


def _runs(values: Sequence[object]) -> list[int]:
    """For each position, the index of the next value that differs (or the length)."""
    out = [0] * len(values)
    until = len(values)
    for k in range(len(values) - 1, -1, -1):
        if k + 1 < len(values) and values[k + 1] != values[k]:
            until = k + 1
        out[k] = until
    return out


def _running(widths: list[float], rates: list[float]) -> tuple[list[float], list[float]]:
    """Running totals of ``rates[k] * widths[k]`` as a double-double (value, rounding error:
    Knuth's TwoSum), at the left edge of segments 0 .. m + 1 (the first two are 0)."""
    size = len(widths) + 2
    if not any(rates):  # a column unused by this series (no gaps, say): all zero
        return [0.0] * size, [0.0] * size
    out_hi, out_lo = [0.0, 0.0], [0.0, 0.0]
    h = low = 0.0
    for rate, width in zip(rates, widths, strict=True):
        x = rate * width
        s = h + x
        bp = s - h
        low += (h - (s - bp)) + (x - bp)
        h = s
        out_hi.append(h)
        out_lo.append(low)
    return out_hi, out_lo

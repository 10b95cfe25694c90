"""Where the enrich stage reads series from: small protocols with an in-memory implementation
that the stream worker (fed by ``grid.intensity`` / ``facility.power``) and the backfill path
(fed from the warehouse) both fill.

Revisions: adding a point for an interval that already has one replaces it (the newest
version wins); the warehouse keeps every version, this cache only the current one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from consumers.enrich import prefix
from consumers.enrich.model import AnnualFactor, IntensityPoint, PuePoint
from consumers.enrich.prefix import StepIndex
from schemas.fact import Signal


class IntensityLookup(Protocol):
    """Intensity points and annual averages."""

    def points(
        self, provider: str, zone: str, signal: Signal, start: datetime, end: datetime
    ) -> Sequence[IntensityPoint]:
        """Points of one series overlapping ``[start, end)``, sorted by start."""
        ...

    def annual(self, zone: str, year: int) -> AnnualFactor | None:
        """The zone's annual average for ``year`` (or the closest earlier/undated one)."""
        ...


class PueLookup(Protocol):
    """Measured PUE points of a site."""

    def pue_points(self, site: str, start: datetime, end: datetime) -> Sequence[PuePoint]:
        """Points overlapping ``[start, end)``, sorted by start."""
        ...


class _Series:
    """One series' points by start time (non-overlapping as providers deliver them)."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []
        self.items: list[IntensityPoint | PuePoint] = []
        self.version = 0  # bumped by every change: derived indexes check it

    def put(self, item: IntensityPoint | PuePoint) -> None:
        self.version += 1
        i = bisect.bisect_left(self.starts, item.start_at)
        if i < len(self.starts) and self.starts[i] == item.start_at:
            self.items[i] = item  # a revision replaces the value
        else:
            self.starts.insert(i, item.start_at)
            self.items.insert(i, item)

    def window(self, start: datetime, end: datetime) -> list[IntensityPoint | PuePoint]:
        # Back up one: the point starting before ``start`` may still overlap it.
        i = max(bisect.bisect_left(self.starts, start) - 1, 0)
        j = bisect.bisect_left(self.starts, end)
        return [p for p in self.items[i:j] if p.end_at > start]


class _Held(NamedTuple):
    series: _Series | None
    pue: _Series | None
    versions: tuple[int, int]
    built: StepIndex | None


class InMemoryLookup:
    """Intensity, annual and PUE series held in memory (implements both protocols)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._pue: dict[str, _Series] = {}
        self._annual: dict[str, dict[int | None, AnnualFactor]] = {}
        self._annual_of: dict[tuple[str, int], AnnualFactor | None] = {}
        # (provider, zone, signal, site, nearest_s, static_pue) -> (the two series and their
        # versions when built, the index): rebuilt when a point or revision arrives.
        self._indexes: dict[tuple[str, str, str, str, float, float], _Held] = {}

    def add(self, points: Iterable[IntensityPoint]) -> int:
        """Add (or revise) intensity points; returns how many were given."""
        n = 0
        for p in points:
            self._series.setdefault((p.provider, p.zone, p.signal), _Series()).put(p)
            n += 1
        return n

    def add_pue(self, points: Iterable[PuePoint]) -> int:
        """Add (or revise) measured PUE points."""
        n = 0
        for p in points:
            self._pue.setdefault(p.site, _Series()).put(p)
            n += 1
        return n

    def remove(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """Forget whole intensity series by (provider, zone, signal)."""
        for key in keys:
            self._series.pop(key, None)

    def remove_pue(self, sites: Iterable[str]) -> None:
        """Forget the measured PUE of whole sites."""
        for site in sites:
            self._pue.pop(site, None)

    def add_annual(self, factors: Iterable[AnnualFactor]) -> int:
        """Add annual/static factors (a later one for the same zone and year wins)."""
        n = 0
        for f in factors:
            self._annual.setdefault(f.zone, {})[f.year] = f
            n += 1
        self._annual_of.clear()
        return n

    def points(
        self, provider: str, zone: str, signal: Signal, start: datetime, end: datetime
    ) -> list[IntensityPoint]:
        """See ``IntensityLookup.points``."""
        series = self._series.get((provider, zone, signal))
        if series is None:
            return []
        return [p for p in series.window(start, end) if isinstance(p, IntensityPoint)]

    def pue_points(self, site: str, start: datetime, end: datetime) -> list[PuePoint]:
        """See ``PueLookup.pue_points``."""
        series = self._pue.get(site)
        if series is None:
            return []
        return [p for p in series.window(start, end) if isinstance(p, PuePoint)]

    def annual(self, zone: str, year: int) -> AnnualFactor | None:
        """See ``IntensityLookup.annual``: the year itself, else the latest earlier year, else
        the undated value, else the earliest later year."""
        key = (zone, year)
        if key not in self._annual_of:
            self._annual_of[key] = self._find_annual(zone, year)
        return self._annual_of[key]

    def step_index(
        self,
        provider: str,
        zone: str,
        signal: Signal,
        site: str,
        *,
        nearest_s: float,
        static_pue: float,
    ) -> StepIndex | None:
        """The cumulative index of one series with a site's PUE (``consumers.enrich.prefix``),
        built on first use and again after any change to either series; None when either has
        overlapping points (then only the general path applies)."""
        series = self._series.get((provider, zone, signal))
        pue = self._pue.get(site)
        key = (provider, zone, signal, site, nearest_s, static_pue)
        held = self._indexes.get(key)
        if (
            held is None
            or held.series is not series
            or held.pue is not pue
            or held.versions != (series.version if series else 0, pue.version if pue else 0)
        ):
            index = prefix.build(
                [p for p in series.items if isinstance(p, IntensityPoint)] if series else [],
                [p for p in pue.items if isinstance(p, PuePoint)] if pue else [],
                nearest_s=nearest_s,
                static_pue=static_pue,
            )
            versions = (series.version if series else 0, pue.version if pue else 0)
            held = _Held(series, pue, versions, index)
            self._indexes[key] = held
        return held.built

    def _find_annual(self, zone: str, year: int) -> AnnualFactor | None:
        by_year = self._annual.get(zone)
        if not by_year:
            return None
        if year in by_year:
            return by_year[year]
        dated = sorted(y for y in by_year if y is not None)
        earlier = [y for y in dated if y < year]
        if earlier:
            return by_year[earlier[-1]]
        if None in by_year:
            return by_year[None]
        return by_year[dated[0]] if dated else None

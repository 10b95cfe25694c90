"""Enrichment state: carbon-intensity and PUE points kept locally, fed by the
``grid.intensity`` and ``facility.power`` topics, so no record needs a remote call.

Pure functions over plain values; the worker keeps the state in faust tables (one entry per
zone or site) and the batch path builds it from files. Points are JSON objects as the
intensity poller and meter import publish them, with at least ``start_at`` (ISO 8601) and
``zone`` (intensity) or ``site`` (power); a newer point for the same series and interval
start replaces the older one (providers revise estimates).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

#: Points kept per zone or site (about 30 days of half-hourly data).
MAX_POINTS: Final = 1500

Point = dict[str, Any]


class PointError(ValueError):
    """A state message that is not a usable point; the message names the field and value."""


@dataclass(frozen=True, slots=True)
class EnrichmentState:
    """Intensity points by zone and PUE/power points by site, each sorted by ``start_at``."""

    intensity: Mapping[str, Sequence[Point]] = field(default_factory=dict)
    power: Mapping[str, Sequence[Point]] = field(default_factory=dict)


def parse_point(value: bytes, key_field: str) -> tuple[str, Point]:
    """(zone or site, point) from one topic message; raises PointError naming the problem."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PointError(f"point is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PointError(f"point is a JSON {type(doc).__name__}, not an object")
    name = doc.get(key_field)
    if not isinstance(name, str) or not name:
        raise PointError(f"field {key_field!r} has value {name!r}: expected a non-empty string")
    if not isinstance(doc.get("start_at"), str):
        raise PointError(f"field 'start_at' has value {doc.get('start_at')!r}: expected ISO 8601")
    return name, doc


def _series_key(point: Point) -> tuple[str, str, str]:
    return (str(point.get("provider", "")), str(point.get("signal", "")), point["start_at"])


def _start(point: Point) -> str:
    start: str = point["start_at"]  # parse_point checked it is a string
    return start


def merge_point(points: Sequence[Point], point: Point, keep: int = MAX_POINTS) -> list[Point]:
    """``points`` (sorted by start, as this function returns them) with ``point`` added (or
    replacing the one for the same provider, signal and start), sorted by start, the oldest
    dropped beyond ``keep``. A new point goes after those with the same start, as a stable
    sort would put it; only the points with its start are looked at (two bisects), so a
    message costs a copy of the list, not a sort of it."""
    key = _series_key(point)
    start = _start(point)
    lo = bisect.bisect_left(points, start, key=_start)
    hi = bisect.bisect_right(points, start, key=_start)
    same_start = [p for p in points[lo:hi] if _series_key(p) != key]
    merged = [*points[:lo], *same_start, point, *points[hi:]]
    return merged[-keep:]

"""Electricity Maps API v3 carbon-intensity replies.

Accepted shapes: a single object (``/latest``, ``/past``), ``{"history": [...]}``
(``/history``), ``{"data": [...]}`` (``/past-range``) and ``{"forecast": [...]}``
(``/forecast``). ``datetime`` is the start of the interval; the interval length follows
``temporalGranularity`` when present, hourly otherwise. Basis is ``emissionFactorType``
(lifecycle by default, as the API's own default). Forecast points are estimated.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from consumers.enrich.model import (
    IntensityPoint,
    Parsed,
    Rejected,
    SeriesError,
    finish,
    intensity_value,
    parse_utc,
)
from consumers.enrich.parsers.jsonload import array, field, load_json

PROVIDER = "electricitymaps"

GRANULARITY: dict[str, timedelta] = {
    "5_minutes": timedelta(minutes=5),
    "15_minutes": timedelta(minutes=15),
    "hourly": timedelta(hours=1),
}


def parse(payload: bytes | str | dict[str, Any], fetched_at: datetime | None = None) -> Parsed:
    """Points from any carbon-intensity reply shape (see module docstring)."""
    body = load_json(payload, PROVIDER)
    if not isinstance(body, dict):
        raise SeriesError(f"{PROVIDER}: expected a JSON object, got {type(body).__name__}")
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    if "forecast" in body:
        zone = field(body, "zone", PROVIDER)
        for i, item in enumerate(array(body["forecast"], "forecast")):
            _point(item, f"forecast[{i}]", zone, fetched_at, True, points, rejected)
    elif "history" in body or "data" in body:
        key = "history" if "history" in body else "data"
        zone = body.get("zone")
        for i, item in enumerate(array(body[key], key)):
            _point(item, f"{key}[{i}]", zone, fetched_at, None, points, rejected)
    elif "carbonIntensity" in body:
        _point(body, "reply", None, fetched_at, None, points, rejected)
    else:
        keys = ", ".join(sorted(body)[:8])
        raise SeriesError(f"{PROVIDER}: no carbonIntensity/history/data/forecast key ({keys})")
    return finish(points, rejected)


def _point(
    item: Any,
    where: str,
    zone: str | None,
    fetched_at: datetime | None,
    estimated: bool | None,
    points: list[IntensityPoint],
    rejected: list[Rejected],
) -> None:
    start = parse_utc(field(item, "datetime", where), f"{where}.datetime")
    value = intensity_value(field(item, "carbonIntensity", where), f"{where}.carbonIntensity")
    if isinstance(value, Rejected):
        rejected.append(value)
        return
    item_zone = item.get("zone") or zone
    if not isinstance(item_zone, str) or not item_zone:
        raise SeriesError(f"{where}.zone: missing")
    granularity = item.get("temporalGranularity", "hourly")
    step = GRANULARITY.get(granularity)
    if step is None:
        raise SeriesError(f"{where}.temporalGranularity: unsupported value {granularity!r}")
    factor_type = item.get("emissionFactorType", "lifecycle")
    if factor_type not in ("lifecycle", "direct"):
        raise SeriesError(f"{where}.emissionFactorType: unknown value {factor_type!r}")
    is_estimated = estimated if estimated is not None else item.get("isEstimated", False)
    if not isinstance(is_estimated, bool):
        raise SeriesError(f"{where}.isEstimated: expected true/false, got {is_estimated!r}")
    updated = item.get("updatedAt")
    points.append(
        IntensityPoint(
            provider=PROVIDER,
            zone=item_zone,
            signal="average",
            basis=factor_type,
            start_at=start,
            end_at=start + step,
            value_g_per_kwh=value,
            is_estimated=is_estimated,
            fetched_at=fetched_at,
            updated_at=parse_utc(updated, f"{where}.updatedAt") if updated else None,
        )
    )

"""UK Carbon Intensity API (NESO, api.carbonintensity.org.uk) replies.

National (``/intensity...``): ``{"data": [{"from", "to", "intensity": {"forecast",
"actual", "index"}}]}``; ``actual`` is used when present, else ``forecast`` (estimated).
Regional: all regions ``{"data": [{"from", "to", "regions": [{"regionid", "intensity"}]}]}``,
or one region as ``{"data": {"regionid", "data": [...]}}`` or a list of such objects
(postcode form). Regional data has ``forecast`` only, so it is always estimated.
Values are direct CO2 of generation (incl. imports and losses), half-hourly, UTC ``...Z``.
"""

from __future__ import annotations

from datetime import datetime
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

PROVIDER = "uk-carbon-intensity"
NATIONAL_ZONE = "GB"


def region_zone(regionid: Any) -> str:
    """Zone name of a NESO region id: ``GB-R<id>`` (1 North Scotland ... 17 Wales)."""
    return f"GB-R{regionid}"


def parse(payload: bytes | str | dict[str, Any], fetched_at: datetime | None = None) -> Parsed:
    """Points from a national or regional reply (shape detected)."""
    body = load_json(payload, PROVIDER)
    data = field(body, "data", PROVIDER)
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    if isinstance(data, dict):  # one region: {"regionid", ..., "data": [...]}
        _region(data, "data", fetched_at, points, rejected)
        return finish(points, rejected)
    for i, item in enumerate(array(data, "data")):
        where = f"data[{i}]"
        if isinstance(item, dict) and "regions" in item:
            start, end = _interval(item, where)
            for j, region in enumerate(array(item["regions"], f"{where}.regions")):
                rwhere = f"{where}.regions[{j}]"
                zone = region_zone(field(region, "regionid", rwhere))
                _add(region, rwhere, zone, start, end, fetched_at, points, rejected)
        elif isinstance(item, dict) and "regionid" in item:
            _region(item, where, fetched_at, points, rejected)
        else:
            start, end = _interval(item, where)
            _add(item, where, NATIONAL_ZONE, start, end, fetched_at, points, rejected)
    return finish(points, rejected)


def _region(
    region: Any,
    where: str,
    fetched_at: datetime | None,
    points: list[IntensityPoint],
    rejected: list[Rejected],
) -> None:
    zone = region_zone(field(region, "regionid", where))
    for k, period in enumerate(array(field(region, "data", where), f"{where}.data")):
        pwhere = f"{where}.data[{k}]"
        start, end = _interval(period, pwhere)
        _add(period, pwhere, zone, start, end, fetched_at, points, rejected)


def _interval(item: Any, where: str) -> tuple[datetime, datetime]:
    start = parse_utc(field(item, "from", where), f"{where}.from")
    end = parse_utc(field(item, "to", where), f"{where}.to")
    if end <= start:
        raise SeriesError(f"{where}: 'to' {item['to']!r} is not after 'from' {item['from']!r}")
    return start, end


def _add(
    item: Any,
    where: str,
    zone: str,
    start: datetime,
    end: datetime,
    fetched_at: datetime | None,
    points: list[IntensityPoint],
    rejected: list[Rejected],
) -> None:
    intensity = field(item, "intensity", where)
    if not isinstance(intensity, dict):
        raise SeriesError(f"{where}.intensity: expected an object, got {intensity!r}")
    actual = intensity.get("actual")
    if actual is not None:
        value = intensity_value(actual, f"{where}.intensity.actual")
        estimated = False
    else:
        value = intensity_value(intensity.get("forecast"), f"{where}.intensity.forecast")
        estimated = True
    if isinstance(value, Rejected):
        rejected.append(value)
        return
    points.append(
        IntensityPoint(
            provider=PROVIDER,
            zone=zone,
            signal="average",
            basis="direct",
            start_at=start,
            end_at=end,
            value_g_per_kwh=value,
            is_estimated=estimated,
            fetched_at=fetched_at,
        )
    )

"""Reading and writing the versioned carbon-intensity and the PUE time series.

``ts_carbon_intensity`` keeps every version: writing a point whose interval already has a
different latest value (or estimated flag, or end) adds the next ``version``; writing the
same value again adds nothing (re-fetching is harmless). Reads take, per interval, the latest
version fetched at or before ``as_of`` (default: now), so a footprint can be reproduced as
it was computed. All SQL goes through SQLAlchemy Core with bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, and_, select

from consumers.enrich.model import IntensityPoint, PuePoint
from warehouse.models.series import CarbonIntensity, PueInterval

CI: Table = CarbonIntensity.__table__  # type: ignore[assignment]
PUE: Table = PueInterval.__table__  # type: ignore[assignment]
UNSPECIFIED = "unspecified"

SeriesKey = tuple[str, str, str, str, datetime]  # provider, zone, signal, basis, start


class Latest(NamedTuple):
    """The newest stored version of one interval."""

    version: int
    value_g_per_kwh: float
    is_estimated: bool
    interval_end: datetime


@dataclass(frozen=True)
class WriteResult:
    """What a write did: new intervals, revisions (new versions) and unchanged values."""

    inserted: int = 0
    revised: int = 0
    unchanged: int = 0
    revised_ranges: tuple[tuple[str, str, str, datetime, datetime], ...] = ()


def key_of(point: IntensityPoint) -> SeriesKey:
    """The versioned key of a point (basis ``None`` is stored as ``unspecified``)."""
    basis = point.basis or UNSPECIFIED
    return (point.provider, point.zone, point.signal, basis, point.start_at)


def plan_versions(
    latest: Mapping[SeriesKey, Latest],
    points: Iterable[IntensityPoint],
    now: datetime,
    source: str | None,
) -> tuple[list[dict[str, Any]], WriteResult]:
    """Pure: the rows to insert for ``points`` given the latest stored versions."""
    rows: list[dict[str, Any]] = []
    inserted = revised = unchanged = 0
    ranges: list[tuple[str, str, str, datetime, datetime]] = []
    seen: dict[SeriesKey, Latest] = dict(latest)
    for p in points:
        key = key_of(p)
        old = seen.get(key)
        if old is not None and (old.value_g_per_kwh, old.is_estimated, old.interval_end) == (
            p.value_g_per_kwh,
            p.is_estimated,
            p.end_at,
        ):
            unchanged += 1
            continue
        version = 1 if old is None else old.version + 1
        if old is None:
            inserted += 1
        else:
            revised += 1
            ranges.append(
                (p.provider, p.zone, p.signal, p.start_at, max(p.end_at, old.interval_end))
            )
        seen[key] = Latest(version, p.value_g_per_kwh, p.is_estimated, p.end_at)
        rows.append(
            {
                "provider": p.provider,
                "zone": p.zone,
                "signal": p.signal,
                "basis": key[3],
                "interval_start": p.start_at,
                "interval_end": p.end_at,
                "value_g_per_kwh": p.value_g_per_kwh,
                "is_estimated": p.is_estimated,
                "fetched_at": p.fetched_at or now,
                "version": version,
                "source": source,
            }
        )
    return rows, WriteResult(inserted, revised, unchanged, tuple(ranges))


def write_intensity(
    conn: Connection, points: Sequence[IntensityPoint], now: datetime, source: str | None = None
) -> WriteResult:
    """Store points as new intervals or new versions (in the caller's transaction)."""
    if not points:
        return WriteResult()
    latest: dict[SeriesKey, Latest] = {}
    for provider, zone, signal in {(p.provider, p.zone, p.signal) for p in points}:
        mine = [p for p in points if (p.provider, p.zone, p.signal) == (provider, zone, signal)]
        lo, hi = min(p.start_at for p in mine), max(p.start_at for p in mine)
        query = select(CI).where(
            CI.c.provider == provider,
            CI.c.zone == zone,
            CI.c.signal == signal,
            CI.c.interval_start >= lo,
            CI.c.interval_start <= hi,
        )
        for row in conn.execute(query).mappings():
            key = (provider, zone, signal, row["basis"], row["interval_start"])
            if key not in latest or row["version"] > latest[key].version:
                latest[key] = Latest(
                    row["version"], row["value_g_per_kwh"], row["is_estimated"], row["interval_end"]
                )
    rows, result = plan_versions(latest, points, now, source)
    if rows:
        conn.execute(CI.insert(), rows)
    return result


def read_intensity(
    conn: Connection,
    provider: str,
    zone: str,
    signal: str,
    start: datetime,
    end: datetime,
    as_of: datetime | None = None,
) -> list[IntensityPoint]:
    """Points overlapping ``[start, end)``: per interval the latest version fetched at or
    before ``as_of`` (all versions when ``as_of`` is None), sorted by start."""
    conditions = [
        CI.c.provider == provider,
        CI.c.zone == zone,
        CI.c.signal == signal,
        CI.c.interval_start < end,
        CI.c.interval_end > start,
    ]
    if as_of is not None:
        conditions.append(CI.c.fetched_at <= as_of)
    best: dict[tuple[str, datetime], Any] = {}
    for row in conn.execute(select(CI).where(and_(*conditions))).mappings():
        key = (row["basis"], row["interval_start"])
        if key not in best or row["version"] > best[key]["version"]:
            best[key] = row
    points = [
        IntensityPoint(
            provider=row["provider"],
            zone=row["zone"],
            signal=row["signal"],
            basis=None if row["basis"] == UNSPECIFIED else row["basis"],
            start_at=row["interval_start"],
            end_at=row["interval_end"],
            value_g_per_kwh=row["value_g_per_kwh"],
            is_estimated=row["is_estimated"],
            fetched_at=row["fetched_at"],
        )
        for row in best.values()
    ]
    points.sort(key=lambda p: p.start_at)
    return points


def write_pue(
    conn: Connection, points: Sequence[PuePoint], now: datetime, source: str = "measured"
) -> int:
    """Insert or replace measured PUE intervals (key: site, interval start, source)."""
    for p in points:
        where = and_(
            PUE.c.site == p.site, PUE.c.interval_start == p.start_at, PUE.c.source == source
        )
        values = {"interval_end": p.end_at, "pue": p.pue, "fetched_at": p.fetched_at or now}
        if conn.execute(PUE.update().where(where).values(**values)).rowcount == 0:
            conn.execute(
                PUE.insert().values(site=p.site, interval_start=p.start_at, source=source, **values)
            )
    return len(points)


def read_pue(conn: Connection, site: str, start: datetime, end: datetime) -> list[PuePoint]:
    """Measured PUE overlapping ``[start, end)`` (ratio, or total/IT power), by start."""
    query = (
        select(PUE)
        .where(PUE.c.site == site, PUE.c.interval_start < end, PUE.c.interval_end > start)
        .order_by(PUE.c.interval_start)
    )
    out = []
    for row in conn.execute(query).mappings():
        pue = row["pue"]
        if pue is None:
            pue = row["total_power_w"] / row["it_power_w"]
        out.append(
            PuePoint(
                site=row["site"],
                start_at=row["interval_start"],
                end_at=row["interval_end"],
                pue=pue,
                source=row["source"],
                fetched_at=row["fetched_at"],
            )
        )
    return out

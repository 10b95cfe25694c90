"""WattTime v3 replies and flattened forecast CSVs.

Values are lbs CO2/MWh (``meta.units`` ``lbs_co2_per_mwh``), converted to g/kWh with
x 0.45359237. ``co2_moer`` is a *marginal* signal: stored and forecast, never used for
accounting (which takes the first average series). ``co2_aoer`` is average.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from consumers.enrich.model import (
    G_PER_KWH_PER_LBS_PER_MWH,
    IntensityPoint,
    Parsed,
    Rejected,
    SeriesError,
    finish,
    intensity_value,
    parse_utc,
)
from consumers.enrich.parsers.jsonload import array, field, load_json
from schemas.fact import Signal

PROVIDER = "watttime"
SIGNALS: dict[str, Signal] = {"co2_moer": "marginal", "co2_aoer": "average"}
UNITS = {"lbs_co2_per_mwh": G_PER_KWH_PER_LBS_PER_MWH, "g_co2_per_kwh": 1.0}


def parse_json(
    payload: bytes | str | dict[str, Any],
    fetched_at: datetime | None = None,
    *,
    forecast: bool = False,
) -> Parsed:
    """Points from ``/v3/historical`` or ``/v3/forecast`` (``data`` + ``meta``)."""
    body = load_json(payload, PROVIDER)
    meta = field(body, "meta", PROVIDER)
    region = field(meta, "region", "meta")
    signal_type = meta.get("signal_type", "co2_moer")
    signal = SIGNALS.get(signal_type)
    if signal is None:
        raise SeriesError(f"meta.signal_type: unsupported value {signal_type!r}")
    units = meta.get("units", "lbs_co2_per_mwh")
    if units not in UNITS:
        raise SeriesError(f"meta.units: unsupported value {units!r}")
    period = meta.get("data_point_period_seconds", 300)
    if not isinstance(period, int) or period <= 0:
        raise SeriesError(f"meta.data_point_period_seconds: bad value {period!r}")
    rows = [
        (f"data[{i}]", field(item, "point_time", f"data[{i}]"), field(item, "value", f"data[{i}]"))
        for i, item in enumerate(array(field(body, "data", PROVIDER), "data"))
    ]
    estimated = forecast or "generated_at" in meta
    return _build(
        rows, region, signal, UNITS[units], timedelta(seconds=period), fetched_at, estimated
    )


def parse_csv(
    text: str,
    region: str,
    fetched_at: datetime | None = None,
    *,
    signal: Signal = "marginal",
    step: timedelta = timedelta(minutes=5),
    forecast: bool = True,
) -> Parsed:
    """Points from a ``point_time,value`` CSV (a pandas index column first is allowed);
    units lbs CO2/MWh. The region is not in the file, so the caller names it."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "point_time" not in header or "value" not in header:
        raise SeriesError(f"{PROVIDER}: CSV header must have point_time and value: {header}")
    t_col, v_col = header.index("point_time"), header.index("value")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise SeriesError(f"{PROVIDER}: line {lineno} has {len(row)} fields (truncated?)")
        rows.append((f"line {lineno}", row[t_col], row[v_col] or None))
    return _build(rows, region, signal, G_PER_KWH_PER_LBS_PER_MWH, step, fetched_at, forecast)


def _build(
    rows: list[tuple[str, Any, Any]],
    region: str,
    signal: Signal,
    scale: float,
    step: timedelta,
    fetched_at: datetime | None,
    estimated: bool,
) -> Parsed:
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    for where, stamp, raw in rows:
        start = parse_utc(stamp, f"{where}.point_time")
        value = intensity_value(raw, f"{where}.value", scale)
        if isinstance(value, Rejected):
            rejected.append(value)
            continue
        points.append(
            IntensityPoint(
                provider=PROVIDER,
                zone=region,
                signal=signal,
                basis=None,
                start_at=start,
                end_at=start + step,
                value_g_per_kwh=value,
                is_estimated=estimated,
                fetched_at=fetched_at,
            )
        )
    return finish(points, rejected)

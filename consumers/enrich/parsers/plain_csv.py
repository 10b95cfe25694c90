"""The plain CSV formats for anything without a dedicated parser (documented in
``docs/carbon-intensity.md``).

Intensity: header ``start_at,end_at,zone,intensity_g_per_kwh`` plus optional ``provider``,
``signal`` (average|marginal, default average), ``basis`` (lifecycle|direct|empty) and
``is_estimated`` (true|false). Timestamps are ISO 8601 with a zone (``Z`` or an offset).

PUE (facility meters): header ``start_at,end_at,site`` and either ``pue`` or both
``total_power_w`` and ``it_power_w`` (PUE = total / IT per interval).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime

from consumers.enrich.model import (
    IntensityPoint,
    Parsed,
    PuePoint,
    Rejected,
    SeriesError,
    finish,
    intensity_value,
    parse_utc,
)

INTENSITY_REQUIRED = ("start_at", "end_at", "zone", "intensity_g_per_kwh")
MISSING = {"", "null", "NULL", "None", "NA", "ND", "NaN", "nan"}
TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no", ""}


def parse_intensity(text: str, fetched_at: datetime | None = None, provider: str = "csv") -> Parsed:
    """Points from the plain intensity CSV; bad values are rejected with their line."""
    reader = _reader(text, INTENSITY_REQUIRED, "intensity")
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    for lineno, row in enumerate(reader, start=2):
        where = f"line {lineno}"
        if None in row.values() or None in row:
            raise SeriesError(f"{where}: wrong number of fields (truncated?)")
        start = parse_utc(row["start_at"], f"{where} start_at")
        end = parse_utc(row["end_at"], f"{where} end_at")
        if end <= start:
            raise SeriesError(f"{where}: end_at {row['end_at']!r} is not after start_at")
        raw = row["intensity_g_per_kwh"].strip()
        value = intensity_value(None if raw in MISSING else raw, f"{where} intensity_g_per_kwh")
        if isinstance(value, Rejected):
            rejected.append(value)
            continue
        signal = (row.get("signal") or "average").strip()
        if signal not in ("average", "marginal"):
            raise SeriesError(f"{where} signal: {signal!r} is not average|marginal")
        basis = (row.get("basis") or "").strip() or None
        if basis not in (None, "lifecycle", "direct"):
            raise SeriesError(f"{where} basis: {basis!r} is not lifecycle|direct")
        flag = (row.get("is_estimated") or "").strip().lower()
        if flag not in TRUE | FALSE:
            raise SeriesError(f"{where} is_estimated: {flag!r} is not true|false")
        zone = row["zone"].strip()
        if not zone:
            raise SeriesError(f"{where} zone: empty")
        points.append(
            IntensityPoint(
                provider=(row.get("provider") or "").strip() or provider,
                zone=zone,
                signal="marginal" if signal == "marginal" else "average",
                basis="lifecycle" if basis == "lifecycle" else "direct" if basis else None,
                start_at=start,
                end_at=end,
                value_g_per_kwh=value,
                is_estimated=flag in TRUE,
                fetched_at=fetched_at,
            )
        )
    return finish(points, rejected)


def parse_pue(text: str) -> tuple[list[PuePoint], list[Rejected]]:
    """Measured PUE per interval; a PUE below 1, or IT power <= 0, is rejected."""
    reader = _reader(text, ("start_at", "end_at", "site"), "pue")
    fields = reader.fieldnames or []
    if "pue" not in fields and not {"total_power_w", "it_power_w"} <= set(fields):
        raise SeriesError("pue CSV: needs a 'pue' column or 'total_power_w' and 'it_power_w'")
    points: list[PuePoint] = []
    rejected: list[Rejected] = []
    for lineno, row in enumerate(reader, start=2):
        where = f"line {lineno}"
        if None in row.values() or None in row:
            raise SeriesError(f"{where}: wrong number of fields (truncated?)")
        start = parse_utc(row["start_at"], f"{where} start_at")
        end = parse_utc(row["end_at"], f"{where} end_at")
        if end <= start:
            raise SeriesError(f"{where}: end_at {row['end_at']!r} is not after start_at")
        pue = _pue(row, where)
        if isinstance(pue, Rejected):
            rejected.append(pue)
            continue
        points.append(PuePoint(site=row["site"].strip(), start_at=start, end_at=end, pue=pue))
    points.sort(key=lambda p: (p.site, p.start_at))
    return points, rejected


def _pue(row: dict[str, str], where: str) -> float | Rejected:
    try:
        if (row.get("pue") or "").strip():
            pue = float(row["pue"])
            label = f"pue {row['pue']!r}"
        else:
            total, it = float(row["total_power_w"]), float(row["it_power_w"])
            label = f"total_power_w {row['total_power_w']!r} / it_power_w {row['it_power_w']!r}"
            if not it > 0:
                return Rejected(where, f"it_power_w must be > 0: {row['it_power_w']!r}")
            pue = total / it
    except (TypeError, ValueError, KeyError):
        return Rejected(where, f"not a number: {dict(row)!r}")
    if not math.isfinite(pue) or pue < 1.0 or pue > 10.0:
        return Rejected(where, f"PUE out of range [1, 10]: {label}")
    return pue


def _reader(text: str, required: tuple[str, ...], kind: str) -> csv.DictReader[str]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = [c for c in required if c not in fields]
    if missing:
        raise SeriesError(f"{kind} CSV: missing column(s) {missing}; header is {fields}")
    return reader

"""RTE éCO2mix (France) via ODRÉ: ``taux_co2`` in g/kWh, direct CO2 of French generation.

JSON: API v2.1 ``{"total_count", "results": [{"date_heure", "taux_co2", ...}]}`` or v1
``{"records": [{"fields": {...}}]}``. CSV: the ``;``-separated export, whose
``Date - Heure`` column carries local time with its offset; older files only have ``Date``
and ``Heure(s)`` in Europe/Paris time, where the autumn repeated hour is ambiguous and the
spring hour does not exist, both errors rather than a guess. Rows are not sorted in the
export; missing values are ``ND``, empty or ``null`` and are rejected, never zero.
Each value covers ``step`` (15 minutes for ``eco2mix-national-tr``).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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

PROVIDER = "rte"
ZONE = "FR"
PARIS = ZoneInfo("Europe/Paris")
STEP = timedelta(minutes=15)
MISSING = {"", "ND", "null", "NULL", "-"}


def parse_json(
    payload: bytes | str | dict[str, Any],
    fetched_at: datetime | None = None,
    step: timedelta = STEP,
) -> Parsed:
    """Points from an ODRÉ API v2.1 (``results``) or v1 (``records[].fields``) reply."""
    body = load_json(payload, PROVIDER)
    if isinstance(body, dict) and "results" in body:
        rows = [(f"results[{i}]", r) for i, r in enumerate(array(body["results"], "results"))]
    elif isinstance(body, dict) and "records" in body:
        rows = [
            (f"records[{i}].fields", field(r, "fields", f"records[{i}]"))
            for i, r in enumerate(array(body["records"], "records"))
        ]
    else:
        raise SeriesError(f"{PROVIDER}: expected a 'results' (v2.1) or 'records' (v1) key")
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    for where, row in rows:
        start = parse_utc(field(row, "date_heure", where), f"{where}.date_heure")
        raw = field(row, "taux_co2", where)
        value = intensity_value(None if raw in MISSING else raw, f"{where}.taux_co2")
        if isinstance(value, Rejected):
            rejected.append(Rejected(value.where, f"{value.reason} (raw {raw!r})"))
            continue
        points.append(_point(start, value, step, fetched_at))
    return finish(points, rejected)


def parse_csv(
    text: str | bytes, fetched_at: datetime | None = None, step: timedelta = STEP
) -> Parsed:
    """Points from the ``;`` CSV export (see module docstring for the time columns)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SeriesError(f"{PROVIDER}: CSV is not UTF-8 ({exc})") from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    header = next(reader, None)
    if not header:
        raise SeriesError(f"{PROVIDER}: empty CSV")
    names = [_norm(h) for h in header]
    co2 = _column(names, ("taux de co2 (g/kwh)", "taux de co2", "taux_co2"), header)
    stamp = _find(names, ("date - heure", "date_heure"))
    date = _find(names, ("date",))
    hour = _find(names, ("heure", "heures"))
    if stamp is None and (date is None or hour is None):
        raise SeriesError(f"{PROVIDER}: no 'Date - Heure' nor 'Date'+'Heure' columns in {header}")
    points: list[IntensityPoint] = []
    rejected: list[Rejected] = []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise SeriesError(
                f"{PROVIDER}: line {lineno} has {len(row)} fields, header has {len(header)}"
                " (truncated?)"
            )
        if stamp is not None and row[stamp].strip():
            start = parse_utc(row[stamp], f"line {lineno} column {header[stamp]!r}")
        elif date is not None and hour is not None:
            start = paris_to_utc(row[date], row[hour], f"line {lineno}")
        else:
            raise SeriesError(f"{PROVIDER}: line {lineno}: empty 'Date - Heure' value")
        raw = row[co2].strip()
        where = f"line {lineno} column {header[co2]!r}"
        value = intensity_value(None if raw in MISSING else raw, where)
        if isinstance(value, Rejected):
            rejected.append(Rejected(where, f"{value.reason} (raw {raw!r})"))
            continue
        points.append(_point(start, value, step, fetched_at))
    return finish(points, rejected)


def paris_to_utc(date: str, hour: str, where: str) -> datetime:
    """Local Europe/Paris wall time to UTC; a time that does not exist (spring) or occurs
    twice (autumn) raises SeriesError instead of guessing the offset."""
    try:
        naive = datetime.fromisoformat(f"{date.strip()}T{hour.strip()}")
    except ValueError:
        raise SeriesError(f"{where}: bad local date/time {date!r} {hour!r}") from None
    first = naive.replace(tzinfo=PARIS, fold=0)
    second = naive.replace(tzinfo=PARIS, fold=1)
    back = first.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None)
    if back != naive:
        raise SeriesError(f"{where}: local time {date} {hour} does not exist (DST gap)")
    if first.utcoffset() != second.utcoffset():
        raise SeriesError(
            f"{where}: local time {date} {hour} is ambiguous (daylight-saving change); "
            "use the 'Date - Heure' column with its offset"
        )
    return first.astimezone(UTC)


def _point(
    start: datetime, value: float, step: timedelta, fetched_at: datetime | None
) -> IntensityPoint:
    # Real-time values are measured (revised later into consolidated data, which arrives as
    # a new version), not modelled: is_estimated stays False.
    return IntensityPoint(
        provider=PROVIDER,
        zone=ZONE,
        signal="average",
        basis="direct",
        start_at=start,
        end_at=start + step,
        value_g_per_kwh=value,
        fetched_at=fetched_at,
    )


def _norm(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(text.lower().split())


def _find(names: list[str], wanted: tuple[str, ...]) -> int | None:
    for option in wanted:
        if option in names:
            return names.index(option)
    return None


def _column(names: list[str], wanted: tuple[str, ...], header: list[str]) -> int:
    index = _find(names, wanted)
    if index is None:
        raise SeriesError(f"{PROVIDER}: no CO2 column ({wanted[0]!r}) in header {header}")
    return index

"""Machine-room meter series: per-node (BMC/Redfish/IPMI), per-rack (PDU) and facility.

Input columns (CSV or Parquet), one row per sample:

``timestamp``
    ISO 8601. With an offset (``...+01:00``, ``...Z``) it is converted to UTC; without one it
    is read in ``assume_tz`` (default UTC). Both are reported as ``timezone`` findings. A
    Parquet timestamp column may be tz-aware (converted) or naive (read in ``assume_tz``).
``level``
    ``node``, ``rack`` (PDU) or ``facility`` (whole room incl. cooling: IT x PUE).
``meter_id``
    The node name, rack id or room id.
``power_w``
    Average power in watts over the sample period that *starts* at ``timestamp`` (as
    Redfish/DCMI average readings). The value holds until the next sample, for at most
    ``max_gap_s``; longer silences are gaps (energy unknown, coverage below 1).
``energy_j``
    Instead of ``power_w``: a cumulative energy counter in joules. A counter going back is a
    wrap when ``counter_max_j`` is given, the previous value was in its upper half and the
    wrapped delta (``counter_max_j - previous + current``) is at most twice the meter's
    99th-percentile power over the interval; otherwise a reset (the energy since the reset
    is counted).
    Counters keep energy across gaps (the delta spans the gap).
``counter_max_j`` (optional)
    The counter's wrap value in joules (e.g. ``4294967296`` for a 32-bit joule counter).
``source`` (optional)
    ``bmc``, ``redfish``, ``ipmi``, ``pdu``, ``bms``... shown in the report.

Nothing is dropped silently: unusable rows, duplicates (identical or conflicting), gaps,
wraps, resets and time-zone conversions all become ``QualityIssue`` findings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd

from warehouse.reports.quality import QualityIssue, show

Level = Literal["node", "rack", "facility"]
LEVELS: Final[tuple[Level, ...]] = ("node", "rack", "facility")
REQUIRED_COLUMNS: Final = ("timestamp", "level", "meter_id")
#: Above these a reading is treated as invalid (a unit mix-up or a corrupt sample).
MAX_POWER_W: Final[dict[str, float]] = {"node": 1e5, "rack": 1e7, "facility": 1e9}
_GAP_FACTOR: Final = 2.5  # a silence longer than 2.5 sample periods is a gap
_WRAP_RATE_FACTOR: Final = 2.0  # a wrap's delta may be at most 2x the top power x dt
_TIME_WITH_OFFSET: Final = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$"
_OFFSET: Final = r"(Z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True, slots=True)
class MeterSeries:
    """One meter as a cumulative function of time.

    ``t_s`` are breakpoints (epoch seconds, strictly increasing); ``energy_j`` and
    ``covered_s`` are the cumulative energy and cumulative covered time at each breakpoint,
    linear in between (power is constant between samples). Energy over any window is then a
    difference of two interpolations, exact for windows that do not match the sample grid.
    """

    level: Level
    meter_id: str
    kind: Literal["power", "counter"]
    source: str
    t_s: np.ndarray
    energy_j: np.ndarray
    covered_s: np.ndarray
    samples: int
    # The samples themselves: start (epoch s), average power (W), seconds each one covers.
    sample_t_s: np.ndarray
    sample_w: np.ndarray
    sample_len_s: np.ndarray

    def energy_between(self, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
        """Metered energy (J) in each window ``[start_s, end_s]``."""
        return np.interp(end_s, self.t_s, self.energy_j) - np.interp(
            start_s, self.t_s, self.energy_j
        )

    def covered_between(self, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
        """Seconds of each window covered by samples."""
        return np.interp(end_s, self.t_s, self.covered_s) - np.interp(
            start_s, self.t_s, self.covered_s
        )

    @property
    def total_energy_j(self) -> float:
        """Energy over the whole series."""
        return float(self.energy_j[-1] - self.energy_j[0])


@dataclass(frozen=True, slots=True)
class MeterSet:
    """Every meter series read, keyed by ``(level, meter_id)``, with the findings."""

    series: Mapping[tuple[str, str], MeterSeries]
    issues: tuple[QualityIssue, ...]
    rows_read: int
    rows_used: int

    def level(self, level: Level) -> dict[str, MeterSeries]:
        """Series of one level by meter id."""
        return {mid: s for (lvl, mid), s in self.series.items() if lvl == level}


def read_meter_table(path: str | Path) -> pd.DataFrame:
    """Read a meter file (``.parquet``/``.pq`` with pyarrow, anything else as CSV) as is."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path, engine="pyarrow")
    # Strings stay strings: timestamps keep their offsets and bad numbers stay visible.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def parse_meters(
    table: pd.DataFrame,
    *,
    assume_tz: str = "UTC",
    max_gap_s: float | None = None,
) -> MeterSet:
    """Clean a meter table into series. Pure: no I/O, no clock.

    ``max_gap_s`` is the longest silence a power sample covers (default 2.5 sample periods,
    the period being each meter's median sample spacing).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"meter table lacks column(s) {', '.join(missing)}")
    if "power_w" not in table.columns and "energy_j" not in table.columns:
        raise ValueError("meter table needs a power_w or an energy_j column")
    issues: list[QualityIssue] = []
    rows_read = len(table)
    table = table.reset_index(drop=True)
    df = pd.DataFrame({"row": np.arange(rows_read, dtype=np.int64)})
    df["level"] = _text(table["level"]).str.lower()
    df["meter_id"] = _text(table["meter_id"])
    df["source"] = _text(table["source"]) if "source" in table.columns else ""
    unparsed: dict[str, np.ndarray] = {}
    df["t_s"], unparsed["timestamp"], reported = _parse_times(table["timestamp"], assume_tz, issues)
    for name in ("power_w", "energy_j", "counter_max_j"):
        df[name], unparsed[name] = _numbers(table, name)
    df = _drop_invalid(df, table, unparsed, reported, issues)
    df = _drop_duplicates(df, issues)
    series: dict[tuple[str, str], MeterSeries] = {}
    used = 0
    for (level, meter_id), group in df.groupby(["level", "meter_id"], sort=True):
        group = group.sort_values(["t_s", "row"], kind="stable")
        s = _series(str(level), str(meter_id), group, max_gap_s, issues)
        if s is not None:
            series[(s.level, s.meter_id)] = s
            used += s.samples
    return MeterSet(series=series, issues=tuple(issues), rows_read=rows_read, rows_used=used)


def _text(column: pd.Series) -> pd.Series:
    return column.astype("string").fillna("").str.strip()


def _numbers(table: pd.DataFrame, name: str) -> tuple[pd.Series, np.ndarray]:
    """Floats (NaN when empty) and a mask of values given but not numbers."""
    if name not in table.columns:
        return pd.Series(np.nan, index=table.index, dtype="float64"), np.zeros(len(table), bool)
    column = table[name]
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), np.zeros(len(table), bool)
    text = _text(column)
    values = pd.to_numeric(text.where(text != ""), errors="coerce").astype("float64")
    return values, ((text != "") & values.isna()).to_numpy()


def _parse_times(
    column: pd.Series, assume_tz: str, issues: list[QualityIssue]
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Epoch seconds per row (NaN where unreadable), a mask of values given but unreadable,
    and a mask of rows already reported (local times that do not exist or are ambiguous)."""
    n = len(column)
    none = np.zeros(n, bool)
    if pd.api.types.is_datetime64_any_dtype(column):
        values = pd.Series(column)
        if values.dt.tz is None:
            count = int(values.notna().sum())
            issues.append(_tz_issue(f"timestamps without offset read as {assume_tz}", count))
            localized = values.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
            lost = (values.notna() & localized.isna()).to_numpy()
            _report_dst(lost, values.astype("string"), assume_tz, issues)
            return _epoch(localized), none, lost
        if str(values.dt.tz) != "UTC":
            count = int(values.notna().sum())
            issues.append(_tz_issue(f"timestamps converted from {values.dt.tz} to UTC", count))
        return _epoch(values), none, none
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), none, none  # epoch seconds
    text = _text(column)
    aware = text.str.contains(_TIME_WITH_OFFSET, regex=True)
    out = pd.Series(np.nan, index=text.index, dtype="float64")
    if aware.any():
        out[aware] = _epoch(
            pd.to_datetime(text[aware], utc=True, format="ISO8601", errors="coerce")
        )
        offsets = text[aware].str.extract(_OFFSET, expand=False).str.replace(":", "")
        for offset, count in sorted(offsets.value_counts().items()):
            if offset not in ("Z", "+0000", "-0000"):
                detail = f"timestamps with offset {offset} converted to UTC"
                issues.append(_tz_issue(detail, int(count)))
    naive = ~aware & (text != "")
    lost = none.copy()
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        issues.append(
            _tz_issue(f"timestamps without offset read as {assume_tz}", int(parsed.notna().sum()))
        )
        localized = parsed.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
        lost_naive = parsed.notna() & localized.isna()
        lost[lost_naive[lost_naive].index.to_numpy()] = True
        _report_dst(lost, text, assume_tz, issues)
        out[naive] = _epoch(localized)
    return out, ((text != "") & out.isna()).to_numpy() & ~lost, lost


def _report_dst(
    lost: np.ndarray, text: pd.Series, assume_tz: str, issues: list[QualityIssue]
) -> None:
    if lost.any():
        issues.append(
            QualityIssue(
                kind="invalid_row",
                subject="timestamp",
                detail=f"ambiguous or nonexistent local time in {assume_tz} (DST change); "
                f"first at row {int(np.flatnonzero(lost)[0]) + 1}: {show(text[lost].iloc[0])}",
                count=int(lost.sum()),
            )
        )


def _epoch(values: pd.Series) -> pd.Series:
    """Epoch seconds of aware timestamps; NaN for NaT."""
    utc = values.dt.tz_convert("UTC")
    return (utc - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def _tz_issue(detail: str, count: int) -> QualityIssue:
    return QualityIssue(kind="timezone", subject="timestamp", detail=detail, count=count)


def _drop_invalid(
    df: pd.DataFrame,
    table: pd.DataFrame,
    unparsed: dict[str, np.ndarray],
    reported: np.ndarray,
    issues: list[QualityIssue],
) -> pd.DataFrame:
    """Remove unusable rows: one finding per reason, naming the field and the first value."""
    reasons = pd.Series("", index=df.index, dtype="object")
    reasons[reported] = "-"  # already reported (DST)

    def mark(mask: pd.Series | np.ndarray, reason: str) -> None:
        reasons[np.asarray(mask, dtype=bool) & (reasons == "").to_numpy()] = reason

    mark(unparsed["timestamp"], "timestamp: not an ISO 8601 date-time")
    mark(df["t_s"].isna().to_numpy() | np.isinf(df["t_s"].to_numpy()), "timestamp: missing")
    mark(~df["level"].isin(LEVELS), "level: not node, rack or facility")
    mark(df["meter_id"] == "", "meter_id: empty")
    for name in ("power_w", "energy_j", "counter_max_j"):
        mark(unparsed[name], f"{name}: not a number")
        mark(np.isinf(df[name].to_numpy()), f"{name}: not finite")
    has_p, has_e = df["power_w"].notna(), df["energy_j"].notna()
    mark(~has_p & ~has_e, "power_w/energy_j: neither given")
    mark(has_p & has_e, "power_w/energy_j: both given")
    mark(df["power_w"] < 0, "power_w: negative")
    mark(df["energy_j"] < 0, "energy_j: negative counter")
    limit = df["level"].map(MAX_POWER_W).astype("float64").fillna(math.inf)
    mark(df["power_w"] > limit, "power_w: implausibly large for its level")
    mark(df["counter_max_j"] <= 0, "counter_max_j: not positive")
    bad = reasons != ""
    shown = bad & (reasons != "-")
    for reason, rows in df[shown].groupby(reasons[shown], sort=True):
        field = str(reason).split(":", 1)[0].split("/", 1)[0]
        first = int(rows["row"].iloc[0])
        value = table[field].iloc[first] if field in table.columns else None
        issues.append(
            QualityIssue(
                kind="invalid_row",
                subject=field,
                detail=f"{reason}; first at row {first + 1}: {show(value)}",
                count=len(rows),
            )
        )
    return df[~bad]


def _drop_duplicates(df: pd.DataFrame, issues: list[QualityIssue]) -> pd.DataFrame:
    """Keep the first sample per (level, meter, instant); report identical and conflicting."""
    key = ["level", "meter_id", "t_s"]
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return df
    groups = df[dup].groupby(key, sort=True)
    summary: dict[tuple[str, str, str], list[float]] = {}
    for (level, meter_id, t_s), rows in groups:
        values = rows[["power_w", "energy_j"]].to_numpy()
        same = bool((pd.DataFrame(values).nunique(dropna=False) <= 1).all())
        kind = "duplicate" if same else "conflicting_duplicate"
        summary.setdefault((kind, str(level), str(meter_id)), []).append(float(t_s))
        if not same:
            summary.setdefault(("values", str(level), str(meter_id)), []).extend(
                float(v) for v in values[~np.isnan(values)]
            )
    for (kind, level, meter_id), times in summary.items():
        if kind == "values":
            continue
        detail = f"{len(times)} instant(s) sampled more than once; first row kept"
        if kind == "conflicting_duplicate":
            values = summary[("values", level, meter_id)][:4]
            detail += f"; values differ, e.g. {', '.join(f'{v:g}' for v in values)}"
        issues.append(
            QualityIssue(
                kind=kind,  # type: ignore[arg-type]
                subject=f"{level} {meter_id}",
                detail=detail,
                count=len(times),
                at=_dt(min(times)),
                until=_dt(max(times)),
            )
        )
    return df[~df.duplicated(key, keep="first")]


def _series(
    level: str,
    meter_id: str,
    group: pd.DataFrame,
    max_gap_s: float | None,
    issues: list[QualityIssue],
) -> MeterSeries | None:
    subject = f"{level} {meter_id}"
    is_counter = group["energy_j"].notna()
    kind: Literal["power", "counter"] = "counter" if is_counter.sum() > len(group) / 2 else "power"
    wrong = is_counter if kind == "power" else ~is_counter
    if wrong.any():
        issues.append(
            QualityIssue(
                kind="invalid_row",
                subject=subject,
                detail=f"mixes power and counter rows; {kind} kept, "
                f"{int(wrong.sum())} other row(s) not used",
                count=int(wrong.sum()),
                at=_dt(float(group["t_s"][wrong].iloc[0])),
            )
        )
        group = group[~wrong]
    t = group["t_s"].to_numpy(dtype="float64")
    if len(t) < 2:
        issues.append(
            QualityIssue(
                kind="invalid_row",
                subject=subject,
                detail="a single sample: no interval to measure",
                count=len(t),
                at=_dt(float(t[0])) if len(t) else None,
            )
        )
        return None
    dt = np.diff(t)
    period = float(np.median(dt))
    allowed = max_gap_s if max_gap_s is not None else _GAP_FACTOR * period
    sources = sorted(set(group["source"]) - {""})
    source = ",".join(sources)
    lvl: Level = level  # type: ignore[assignment]
    if kind == "power":
        p = group["power_w"].to_numpy(dtype="float64")
        spans = np.append(dt, period)
        hold = np.where(spans <= allowed, spans, min(period, allowed))
        _report_gaps(subject, t, spans, hold, allowed, p, issues, counter=False)
        xs = np.column_stack((t, t + hold)).ravel()
        seg_e = p * hold
        e = np.column_stack((np.cumsum(seg_e) - seg_e, np.cumsum(seg_e))).ravel()
        c = np.column_stack((np.cumsum(hold) - hold, np.cumsum(hold))).ravel()
        keep = np.r_[True, np.diff(xs) > 0]
        return MeterSeries(
            lvl, meter_id, kind, source, xs[keep], e[keep], c[keep], len(t), t, p, hold
        )
    counter = group["energy_j"].to_numpy(dtype="float64")
    cmax = group["counter_max_j"].to_numpy(dtype="float64")
    delta = np.diff(counter)
    rising = delta > 0
    # A wrap must look like ordinary consumption; a counter that restarted near zero after
    # a reset would otherwise pass for a wrap with an impossible delta.
    rate = float(np.percentile(delta[rising] / dt[rising], 99)) if rising.any() else math.inf
    for i in np.flatnonzero(delta < 0):
        prev, cur, top = counter[i], counter[i + 1], cmax[i + 1]
        at = _dt(float(t[i + 1]))
        wrapped = top - prev + cur
        plausible = wrapped <= _WRAP_RATE_FACTOR * rate * dt[i]
        if not math.isnan(top) and prev >= top / 2 and cur < top / 2 and plausible:
            delta[i] = top - prev + cur
            issues.append(
                QualityIssue(
                    kind="counter_wrap",
                    subject=subject,
                    detail=f"counter {prev:.0f} J -> {cur:.0f} J wrapped at {top:.0f} J; "
                    f"delta {delta[i]:.0f} J counted",
                    at=at,
                    energy_j=float(delta[i]),
                )
            )
        else:
            delta[i] = cur
            issues.append(
                QualityIssue(
                    kind="counter_reset",
                    subject=subject,
                    detail=f"counter {prev:.0f} J -> {cur:.0f} J (reset); {cur:.0f} J since "
                    "the reset counted, energy between the last sample and the reset unknown",
                    at=at,
                    energy_j=float(cur),
                )
            )
    _report_gaps(subject, t, dt, dt, allowed, delta, issues, counter=True)
    e = np.r_[0.0, np.cumsum(delta)]
    return MeterSeries(lvl, meter_id, kind, source, t, e, t - t[0], len(t), t[:-1], delta / dt, dt)


def _report_gaps(
    subject: str,
    t: np.ndarray,
    spans: np.ndarray,
    hold: np.ndarray,
    allowed: float,
    values: np.ndarray,
    issues: list[QualityIssue],
    *,
    counter: bool,
) -> None:
    for i in np.flatnonzero(spans > allowed):
        start = float(t[i])
        end = start + float(spans[i])
        if counter:
            detail = f"no sample for {spans[i]:.0f} s; the counter delta spans it (energy kept)"
            energy: float | None = float(values[i])
        else:
            detail = (
                f"no sample for {spans[i]:.0f} s (allowed {allowed:.0f} s); "
                f"{spans[i] - hold[i]:.0f} s not metered"
            )
            energy = None
        issues.append(
            QualityIssue(
                kind="gap",
                subject=subject,
                detail=detail,
                at=_dt(start),
                until=_dt(end),
                energy_j=energy,
            )
        )


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)

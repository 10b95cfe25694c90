"""The validation report: ``validate`` computes (pure), ``write_report`` writes the HTML,
CSV tables and JSON summary, ``build_validation_report`` does both (the demo's entry point).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from schemas.job import JobRecord
from warehouse.reports import attribution, stats
from warehouse.reports.jobs import JobEnergy, job_energy_from_record
from warehouse.reports.mapping import UNKNOWN, NodeMap, parse_mapping
from warehouse.reports.meters import MeterSet, parse_meters
from warehouse.reports.quality import QualityIssue, count_by_kind

INTERVALS_S: dict[str, float] = {"hour": 3_600.0, "day": 86_400.0}
Interval = Literal["hour", "day"]


@dataclass(frozen=True)
class Validation:
    """Everything the report shows, as plain tables."""

    start_at: datetime
    end_at: datetime
    interval: Interval
    thresholds: stats.Thresholds
    grid: attribution.NodeGrid
    nodes: pd.DataFrame
    intervals: pd.DataFrame
    jobs: pd.DataFrame
    job_stats: dict[str, Any]
    rollups: dict[str, pd.DataFrame]
    issues: tuple[QualityIssue, ...]
    meter_rows: tuple[int, int]  # read, used
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def worst_nodes(self) -> pd.DataFrame:
        """Flagged nodes first, then by |bias|."""
        frame = self.nodes[self.nodes["ratio"].notna()].copy()
        frame["abs_bias"] = frame["bias"].abs()
        frame["flagged"] = frame["flag"] != ""
        return frame.sort_values(["flagged", "abs_bias"], ascending=False).head(20)

    @property
    def worst_jobs(self) -> pd.DataFrame:
        """Comparable jobs out of tolerance and incomplete ones, largest error first."""
        return stats.worst_jobs(self.jobs, self.thresholds)


@dataclass(frozen=True)
class ReportSummary:
    """Where the report went and its JSON summary."""

    out_dir: Path
    html_path: Path
    json_path: Path
    csv_paths: tuple[Path, ...]
    summary: dict[str, Any]


def validate(
    jobs: Sequence[JobEnergy | JobRecord],
    meters: MeterSet,
    node_map: NodeMap,
    start_at: datetime,
    end_at: datetime,
    *,
    interval: Interval = "hour",
    thresholds: stats.Thresholds | None = None,
    extra_issues: Sequence[QualityIssue] = (),
) -> Validation:
    """Compare jobs' Slurm energy with the meters over ``[start_at, end_at]``. Pure."""
    thresholds = thresholds or stats.Thresholds()
    if start_at.utcoffset() is None or end_at.utcoffset() is None:
        raise ValueError("start_at and end_at must be timezone-aware")
    issues: list[QualityIssue] = [*meters.issues, *node_map.issues, *extra_issues]
    energies: list[JobEnergy] = []
    for job in jobs:
        converted = job_energy_from_record(job) if isinstance(job, JobRecord) else job
        if isinstance(converted, QualityIssue):
            issues.append(converted)
        else:
            energies.append(converted)
    t0, t1 = start_at.timestamp(), end_at.timestamp()
    energies = [j for j in energies if j.end_s >= t0 and j.start_s <= t1]
    node_meters = meters.level("node")
    issues.extend(attribution.unknown_node_issues(energies, node_meters, node_map))
    nodes = sorted(set(node_map.nodes) | set(node_meters) | {n for j in energies for n in j.nodes})
    shared = attribution.shared_jobs(energies)
    grid = attribution.node_grid(
        energies,
        node_meters,
        nodes,
        attribution.interval_edges(t0, t1, INTERVALS_S[interval]),
        shared,
    )
    hourly = (
        grid
        if interval == "hour"
        else attribution.node_grid(
            energies, node_meters, nodes, attribution.interval_edges(t0, t1, 3_600.0), shared
        )
    )
    calibration = stats.calibrate_nodes(hourly, thresholds, origin_s=t0)
    node_frame = stats.node_table(
        grid, calibration, node_map, _node_partitions(energies), thresholds
    )
    window = (t0, t1)
    rack_meters, room_meters = meters.level("rack"), meters.level("facility")
    rollups = {
        by: stats.rollup(
            node_frame, by, rack_meters=rack_meters, room_meters=room_meters, window_s=window
        )
        for by in ("rack", "partition", "room", "total")
    }
    job_frame = attribution.compare_jobs(
        energies,
        node_meters,
        node_map,
        window,
        shared,
        min_duration_s=thresholds.min_job_s,
        min_coverage=thresholds.min_coverage,
    )
    job_stats = stats.job_statistics(job_frame, thresholds)
    result = Validation(
        start_at=start_at.astimezone(UTC),
        end_at=end_at.astimezone(UTC),
        interval=interval,
        thresholds=thresholds,
        grid=grid,
        nodes=node_frame,
        intervals=stats.interval_series(grid),
        jobs=job_frame,
        job_stats=job_stats,
        rollups=rollups,
        issues=tuple(issues),
        meter_rows=(meters.rows_read, meters.rows_used),
    )
    result.summary.update(_summary(result))
    return result


def _node_partitions(jobs: Sequence[JobEnergy]) -> dict[str, str]:
    """The partition most jobs on a node ran in (for nodes the mapping gives none)."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for job in jobs:
        if job.partition:
            for node in job.nodes:
                seen[node][job.partition] += 1
    return {node: c.most_common(1)[0][0] for node, c in seen.items()}


def _summary(v: Validation) -> dict[str, Any]:
    total = v.rollups["total"].iloc[0].to_dict() if not v.rollups["total"].empty else {}
    flagged = v.nodes[v.nodes["flag"].isin(["drift", "bias", "drift,bias"])]
    seconds = float(v.grid.seconds.sum())
    return _clean(
        {
            "window": {
                "start_at": v.start_at.isoformat(),
                "end_at": v.end_at.isoformat(),
                "interval": v.interval,
            },
            "totals": {
                "node_metered_j": total.get("metered_j"),
                "attributed_j": total.get("attributed_j"),
                "unattributed_j": total.get("unattributed_j"),
                "attributed_share": total.get("attributed_share"),
                "pdu_j": float(v.rollups["rack"].get("pdu_j", pd.Series(dtype=float)).sum()),
                "facility_j": total.get("facility_j"),
                "it_j": total.get("it_j"),
                "pue": total.get("pue"),
            },
            "nodes": {
                "count": len(v.nodes),
                "metered": int(v.nodes["metered"].sum()),
                "calibrated": int(v.nodes["ratio"].notna().sum()),
                "ratio_median": _median(v.nodes["ratio"]),
                "ratio_weighted": total.get("ratio"),
                "flagged": [
                    {
                        "node": r.node,
                        "flag": r.flag,
                        "ratio": r.ratio,
                        "bias": r.bias,
                        "drift_per_day": r.drift_per_day,
                        "drift_t": r.drift_t,
                    }
                    for r in flagged.itertuples()
                ],
                "without_meter": sorted(v.nodes.loc[~v.nodes["metered"], "node"].tolist()),
            },
            "jobs": v.job_stats,
            "coverage": {
                "meter_time": float(v.grid.covered_s.sum() / (seconds * max(1, len(v.nodes)))),
                "jobs_comparable": v.job_stats.get("comparable", 0)
                / max(1, v.job_stats.get("jobs", 0)),
            },
            "data_quality": {
                "meter_rows_read": v.meter_rows[0],
                "meter_rows_used": v.meter_rows[1],
                "issues": count_by_kind(v.issues),
            },
            "thresholds": {k: getattr(v.thresholds, k) for k in v.thresholds.__dataclass_fields__},
        }
    )


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(v: Validation, out_dir: Path | str, *, title: str | None = None) -> ReportSummary:
    """Write ``report.html``, ``summary.json`` and the CSV tables into ``out_dir``."""
    from warehouse.reports.html import render_html  # matplotlib only when writing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "nodes": v.nodes,
        "node_intervals": v.grid.to_frame(),
        "intervals": v.intervals,
        "jobs": v.jobs,
        "worst_nodes": v.worst_nodes,
        "worst_jobs": v.worst_jobs,
        **{f"rollup_{by}": frame for by, frame in v.rollups.items()},
        "data_quality": pd.DataFrame([i.to_dict() for i in v.issues]),
    }
    csv_paths = []
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        _with_times(frame).to_csv(path, index=False)
        csv_paths.append(path)
    summary = dict(v.summary)
    summary["files"] = {"html": "report.html", "csv": [p.name for p in csv_paths]}
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    html_path = out / "report.html"
    html_path.write_text(render_html(v, title=title), encoding="utf-8")
    return ReportSummary(out, html_path, json_path, tuple(csv_paths), summary)


def _with_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Epoch-second columns (``*_s`` that are instants) as ISO 8601 UTC ``*_at`` columns."""
    frame = frame.copy()
    for name in ("start_s", "end_s", "interval_start_s"):
        if name in frame.columns:
            at = pd.to_datetime(frame[name], unit="s", utc=True)
            frame[name] = at.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            frame = frame.rename(columns={name: name[:-2] + "_at"})
    return frame


def build_validation_report(
    jobs: Sequence[JobEnergy | JobRecord],
    meters: MeterSet | pd.DataFrame,
    mapping: NodeMap | pd.DataFrame,
    start: datetime,
    end: datetime,
    out_dir: Path | str,
    *,
    interval: Interval = "hour",
    assume_tz: str = "UTC",
    thresholds: stats.Thresholds | None = None,
    extra_issues: Sequence[QualityIssue] = (),
    title: str | None = None,
) -> ReportSummary:
    """Validate and write the report. ``meters`` and ``mapping`` may be raw tables (as the
    files hold them) or already parsed."""
    if isinstance(meters, pd.DataFrame):
        meters = parse_meters(meters, assume_tz=assume_tz)
    if isinstance(mapping, pd.DataFrame):
        mapping = parse_mapping(mapping)
    v = validate(
        jobs,
        meters,
        mapping,
        start,
        end,
        interval=interval,
        thresholds=thresholds,
        extra_issues=extra_issues,
    )
    return write_report(v, out_dir, title=title)


__all__ = [
    "UNKNOWN",
    "ReportSummary",
    "Validation",
    "build_validation_report",
    "validate",
    "write_report",
]

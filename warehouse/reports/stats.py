"""Statistics of Slurm energy against meters: per node, per job, per interval, rolled up.

Node calibration (``calibrate_nodes``) uses hourly intervals on exclusive nodes where every
job that touched the interval reported a final energy ("clean" intervals). There a node meter
reads ``metered = m * (true_job_energy + idle_power * idle_s)`` and Slurm reports
``attributed = s * true_job_energy``, so a least-squares fit of

    metered_j ~ alpha * attributed_j + beta * idle_s

gives the Slurm-to-meter ratio ``1 / alpha`` (1.00 = agreement; ``bias = ratio - 1``) and the
node's idle power ``beta`` (W), independent of where jobs start and stop inside an interval.
Letting both coefficients move linearly in time (``alpha0 + alpha1 * days``...) gives the
meter's drift relative to Slurm, ``alpha1 / alpha0`` per day. Rows are weighted by
``1 / metered`` because meter noise is proportional to power.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from warehouse.reports.attribution import NodeGrid
from warehouse.reports.mapping import UNKNOWN, Location, NodeMap
from warehouse.reports.meters import MeterSeries

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a node or a job is an outlier, and what counts as covered."""

    node_bias: float = 0.02  # |Slurm/meter - 1| above this flags a node
    node_drift_per_day: float = 0.005  # |drift| above this (and significant) flags a node
    drift_t_value: float = 5.0  # drift must be this many standard errors from zero
    job_ratio: float = 0.10  # |Slurm/meter - 1| above this flags a job
    min_coverage: float = 0.95  # share of an interval or run the meter must cover
    min_job_s: float = 1_800.0  # shorter jobs are not compared (meter sample resolution)
    min_calibration_bins: int = 6


def calibrate_nodes(grid: NodeGrid, thresholds: Thresholds, origin_s: float) -> pd.DataFrame:
    """Per node: ``ratio`` (Slurm/meter), ``bias``, ``idle_power_w``, ``drift_per_day`` and its
    ``drift_t``, from the node's clean, covered intervals (see the module docstring)."""
    seconds = grid.seconds
    rows = []
    for i, node in enumerate(grid.nodes):
        metered, attributed = grid.metered_j[i], grid.attributed_j[i]
        idle = grid.idle_s[i]
        ok = (
            grid.clean[i]
            & np.isfinite(metered)
            & (metered > 0)
            & (grid.covered_s[i] >= thresholds.min_coverage * seconds)
        )
        days = ((grid.edges_s[:-1] + grid.edges_s[1:]) / 2 - origin_s) / DAY_S
        row: dict[str, Any] = {"node": node, "calibration_bins": int(ok.sum())}
        row.update(_fit(metered[ok], attributed[ok], idle[ok], days[ok], thresholds))
        rows.append(row)
    return pd.DataFrame(rows)


def _fit(
    metered: np.ndarray,
    attributed: np.ndarray,
    idle_s: np.ndarray,
    days: np.ndarray,
    thresholds: Thresholds,
) -> dict[str, float]:
    nan = math.nan
    out = {
        "ratio": nan,
        "bias": nan,
        "idle_power_w": nan,
        "drift_per_day": nan,
        "drift_t": nan,
        "busy_metered_j": nan,
        "busy_attributed_j": nan,
    }
    busy = attributed > 0
    if len(metered) < thresholds.min_calibration_bins or busy.sum() < 3:
        return out
    w = 1.0 / metered
    x = np.column_stack((attributed, idle_s)) * w[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(x, metered * w, rcond=None)
    if alpha > 0:
        out["ratio"] = 1.0 / alpha
        out["bias"] = 1.0 / alpha - 1.0
        out["idle_power_w"] = float(beta)
        out["busy_metered_j"] = float((metered - beta * idle_s).sum())
        out["busy_attributed_j"] = float(attributed.sum())
    span = days.max() - days.min()
    if span < 0.5 or len(metered) < 2 * thresholds.min_calibration_bins:
        return out
    drift, t_value = _fit_drift(metered, attributed, idle_s, days, w, float(alpha), float(beta))
    out["drift_per_day"], out["drift_t"] = drift, t_value
    return out


def _fit_drift(
    metered: np.ndarray,
    attributed: np.ndarray,
    idle_s: np.ndarray,
    days: np.ndarray,
    w: np.ndarray,
    alpha: float,
    beta: float,
) -> tuple[float, float]:
    """Gauss-Newton fit of ``metered = (1 + drift * days) * (alpha * A + beta * idle_s)``:
    a meter that drifts scales busy and idle readings alike, so both inform the drift."""
    theta = np.array([alpha, beta, 0.0])
    jac = np.zeros((len(metered), 3))
    resid = np.zeros(len(metered))
    for _ in range(50):
        a, b, d = theta
        base = a * attributed + b * idle_s
        scale = 1.0 + d * days
        jac = np.column_stack((scale * attributed, scale * idle_s, days * base)) * w[:, None]
        resid = (metered - scale * base) * w
        step, *_ = np.linalg.lstsq(jac, resid, rcond=None)
        theta = theta + step
        if abs(step[2]) < 1e-9:
            break
    a, b, d = theta
    resid = (metered - (1.0 + d * days) * (a * attributed + b * idle_s)) * w
    dof = len(metered) - 3
    if dof <= 0:
        return math.nan, math.nan
    sigma2 = float(resid @ resid) / dof
    se = math.sqrt(max(float(np.linalg.pinv(jac.T @ jac)[2, 2]) * sigma2, 0.0))
    return float(d), float(d / se) if se > 0 else math.inf


def node_table(
    grid: NodeGrid,
    calibration: pd.DataFrame,
    node_map: NodeMap,
    partitions: Mapping[str, str],
    thresholds: Thresholds,
) -> pd.DataFrame:
    """Per node over the window: energies, coverage, busy share, calibration and a flag."""
    seconds = grid.seconds.sum()
    frame = pd.DataFrame(
        {
            "node": list(grid.nodes),
            "rack": [_loc(node_map, n).rack for n in grid.nodes],
            "room": [_loc(node_map, n).room for n in grid.nodes],
            "partition": [
                _loc(node_map, n).partition or partitions.get(n, UNKNOWN) for n in grid.nodes
            ],
            "metered": np.isfinite(grid.metered_j).any(axis=1),
            "metered_j": np.nansum(grid.metered_j, axis=1),
            "attributed_j": grid.attributed_j.sum(axis=1),
            "coverage": grid.covered_s.sum(axis=1) / seconds,
            "busy_share": grid.busy_s.sum(axis=1) / seconds,
        }
    )
    frame["unattributed_j"] = np.where(
        frame["metered"], frame["metered_j"] - frame["attributed_j"], np.nan
    )
    frame = frame.merge(calibration, on="node", how="left")
    drift = frame["drift_per_day"].abs() > thresholds.node_drift_per_day
    drift &= frame["drift_t"].abs() > thresholds.drift_t_value
    biased = frame["bias"].abs() > thresholds.node_bias
    frame["flag"] = [
        ",".join(name for name, on in (("drift", d), ("bias", b)) if on)
        for d, b in zip(drift, biased, strict=True)
    ]
    frame.loc[~frame["metered"], "flag"] = "no_meter"
    return frame


def _loc(node_map: NodeMap, node: str) -> Location:
    return node_map.nodes.get(node) or Location(UNKNOWN, UNKNOWN)


def rollup(
    nodes: pd.DataFrame,
    by: str,
    *,
    rack_meters: Mapping[str, MeterSeries] | None = None,
    room_meters: Mapping[str, MeterSeries] | None = None,
    window_s: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Sums per ``by`` (``rack``, ``partition``, ``room`` or ``total``): node-metered,
    attributed and unattributed energy, coverage, the energy-weighted Slurm/meter ratio;
    for racks the PDU energy, for rooms the facility energy and measured PUE."""
    frame = nodes.assign(total="total")
    weighted = frame["ratio"].notna() & (frame["attributed_j"] > 0)
    frame = frame.assign(
        _w=np.where(weighted, frame["attributed_j"], 0.0),
        _wr=np.where(weighted, frame["attributed_j"] * frame["ratio"].fillna(0), 0.0),
        _cov=frame["coverage"],
    )
    out = frame.groupby(by, sort=True).agg(
        nodes=("node", "count"),
        metered_nodes=("metered", "sum"),
        metered_j=("metered_j", "sum"),
        attributed_j=("attributed_j", "sum"),
        unattributed_j=("unattributed_j", "sum"),
        coverage=("_cov", "mean"),
        _w=("_w", "sum"),
        _wr=("_wr", "sum"),
        flagged_nodes=("flag", lambda f: int((f != "").sum())),
    )
    out["ratio"] = np.where(out["_w"] > 0, out["_wr"] / out["_w"].where(out["_w"] > 0), np.nan)
    out["attributed_share"] = out["attributed_j"] / out["metered_j"].where(out["metered_j"] > 0)
    out = out.drop(columns=["_w", "_wr"]).reset_index().rename(columns={by: "group"})
    if window_s is not None and by == "rack" and rack_meters:
        out["pdu_j"] = [_window_energy(rack_meters.get(g), window_s) for g in out["group"]]
        out["pdu_over_nodes"] = out["pdu_j"] / out["metered_j"].where(out["metered_j"] > 0)
    if window_s is not None and by in ("room", "total") and room_meters:
        if by == "room":
            facility = [_window_energy(room_meters.get(g), window_s) for g in out["group"]]
        else:
            facility = [sum(_window_energy(s, window_s) or 0.0 for s in room_meters.values())]
        out["facility_j"] = facility
        it = _it_energy(nodes, by, rack_meters, window_s)
        out["it_j"] = [it.get(g) for g in out["group"]]
        out["pue"] = out["facility_j"] / out["it_j"].where(out["it_j"] > 0)
    return out


def _it_energy(
    nodes: pd.DataFrame,
    by: str,
    rack_meters: Mapping[str, MeterSeries] | None,
    window_s: tuple[float, float],
) -> dict[str, float]:
    """IT energy per room: PDU energy of its racks where they have one, else node meters."""
    out: dict[str, float] = {}
    for (rack, room), rows in nodes.groupby(["rack", "room"]):
        pdu = _window_energy((rack_meters or {}).get(str(rack)), window_s)
        energy = pdu if pdu is not None else float(rows["metered_j"].sum())
        key = "total" if by == "total" else str(room)
        out[key] = out.get(key, 0.0) + energy
    return out


def _window_energy(series: MeterSeries | None, window_s: tuple[float, float]) -> float | None:
    if series is None:
        return None
    return float(series.energy_between(np.array([window_s[0]]), np.array([window_s[1]]))[0])


def job_statistics(jobs: pd.DataFrame, thresholds: Thresholds) -> dict[str, Any]:
    """Comparable jobs: totals, ratio, bias, MAPE, correlation; counts of every status."""
    if jobs.empty:
        return {"jobs": 0}
    comp = jobs[jobs["comparable"]]
    reported = comp["reported_j"].astype("float64")
    metered = comp["metered_j"].astype("float64")
    total_rep, total_met = float(reported.sum()), float(metered.sum())
    ratio = total_rep / total_met if total_met > 0 else math.nan
    stats: dict[str, Any] = {
        "jobs": len(jobs),
        "comparable": len(comp),
        "reported_j": total_rep,
        "metered_j": total_met,
        "ratio": ratio,
        "bias": ratio - 1.0,
        "mape": float((reported - metered).abs().div(metered).mean()) if len(comp) else None,
        "correlation": float(np.corrcoef(reported, metered)[0, 1]) if len(comp) > 2 else None,
        "outliers": int(((comp["ratio"] - 1).abs() > thresholds.job_ratio).sum()),
        "by_status": {str(k): int(v) for k, v in jobs["status"].value_counts().items()},
        "incomplete": int((jobs["complete"] == False).sum()),  # noqa: E712 (None stays out)
        "shared": int(jobs["shared"].sum()),
        "outside_window": int((~jobs["inside_window"]).sum()),
        "on_unknown_nodes": int((jobs["unknown_nodes"] != "").sum()),
    }
    return stats


def worst_jobs(jobs: pd.DataFrame, thresholds: Thresholds, limit: int = 20) -> pd.DataFrame:
    """Comparable jobs outside the tolerance plus incomplete ones, largest |error| first."""
    if jobs.empty:
        return jobs
    off = jobs["comparable"] & ((jobs["ratio"] - 1).abs() > thresholds.job_ratio)
    late = (jobs["complete"] == False) & jobs["metered_j"].notna()  # noqa: E712
    late &= jobs["reported_j"].notna()
    pick = jobs[off | late].copy()
    pick["reason"] = np.where(pick["complete"] == False, "incomplete", "ratio")  # noqa: E712
    pick["abs_error_j"] = pick["error_j"].abs()
    return pick.sort_values("abs_error_j", ascending=False, kind="stable").head(limit)


def interval_series(grid: NodeGrid) -> pd.DataFrame:
    """Per interval, summed over metered nodes: metered, attributed (on metered nodes),
    unattributed energy; meter coverage over all nodes; attributed share of metered."""
    has_meter = np.isfinite(grid.metered_j)
    attributed_metered = np.where(has_meter, grid.attributed_j, 0.0)
    metered = np.nansum(grid.metered_j, axis=0)
    frame = pd.DataFrame(
        {
            "interval_start_s": grid.edges_s[:-1],
            "seconds": grid.seconds,
            "metered_j": metered,
            "attributed_j": attributed_metered.sum(axis=0),
            "attributed_all_j": grid.attributed_j.sum(axis=0),
            "coverage": grid.covered_s.sum(axis=0) / (grid.seconds * len(grid.nodes)),
        }
    )
    frame["unattributed_j"] = frame["metered_j"] - frame["attributed_j"]
    frame["attributed_share"] = frame["attributed_j"] / frame["metered_j"].where(metered > 0)
    return frame

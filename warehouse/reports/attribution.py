"""Attribute jobs' Slurm energy to nodes and intervals, next to what the meters measured.

Slurm reports one energy per job, summed over its nodes. Without per-node figures the job's
energy is split evenly over its nodes and uniformly over its run window (exact for the
constant-power, equal-node jobs of a typical exclusive allocation). Per node and interval:

* ``metered_j``: the node meter's energy (NaN where the node has no meter),
* ``attributed_j``: the sum of the attributed shares of jobs with a usable energy,
* ``unattributed_j = metered_j - attributed_j``: idle energy plus whatever Slurm missed,
* ``busy_s`` / ``idle_s``: seconds with and without any job on the node (any energy status),
* ``clean``: no job with unusable energy (missing, invalid, incomplete) and no shared job
  touched the interval, so it can calibrate the node (see ``stats.calibrate_nodes``).

Pure: arrays in, arrays out. Times are epoch seconds (UTC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warehouse.reports.jobs import JobEnergy
from warehouse.reports.mapping import NodeMap
from warehouse.reports.meters import MeterSeries
from warehouse.reports.quality import QualityIssue


@dataclass(frozen=True, slots=True)
class NodeGrid:
    """Per-node, per-interval matrices (rows ``nodes``, columns the intervals of ``edges_s``)."""

    nodes: tuple[str, ...]
    edges_s: np.ndarray
    metered_j: np.ndarray
    covered_s: np.ndarray
    attributed_j: np.ndarray
    busy_s: np.ndarray
    clean: np.ndarray

    @property
    def seconds(self) -> np.ndarray:
        """Length of each interval (s)."""
        return np.diff(self.edges_s)

    @property
    def idle_s(self) -> np.ndarray:
        """Seconds with no job on the node, per node and interval."""
        return self.seconds[None, :] - self.busy_s

    @property
    def unattributed_j(self) -> np.ndarray:
        """Metered minus attributed energy (idle energy plus energy Slurm did not report)."""
        return self.metered_j - self.attributed_j

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per node and interval."""
        n_nodes, n_bins = self.metered_j.shape
        return pd.DataFrame(
            {
                "node": np.repeat(np.array(self.nodes, dtype=object), n_bins),
                "interval_start_s": np.tile(self.edges_s[:-1], n_nodes),
                "metered_j": self.metered_j.ravel(),
                "attributed_j": self.attributed_j.ravel(),
                "unattributed_j": self.unattributed_j.ravel(),
                "coverage": (self.covered_s / self.seconds[None, :]).ravel(),
                "busy_s": self.busy_s.ravel(),
            }
        )


def interval_edges(start_s: float, end_s: float, interval_s: float) -> np.ndarray:
    """Interval boundaries from ``start_s`` to ``end_s`` (the last interval may be shorter)."""
    if end_s <= start_s:
        raise ValueError(f"report window is empty: end {end_s} <= start {start_s}")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    edges = np.arange(start_s, end_s, interval_s, dtype="float64")
    return np.append(edges, end_s)


def overlap_s(edges_s: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Seconds of ``[start_s, end_s]`` in each interval."""
    return np.clip(np.minimum(edges_s[1:], end_s) - np.maximum(edges_s[:-1], start_s), 0.0, None)


def spread(edges_s: np.ndarray, start_s: float, end_s: float, energy_j: float) -> np.ndarray:
    """``energy_j`` spread uniformly over ``[start_s, end_s]``, per interval (the part outside
    the edges is not returned). A zero-length run puts it all in the interval holding it."""
    if end_s > start_s:
        return energy_j * overlap_s(edges_s, start_s, end_s) / (end_s - start_s)
    out = np.zeros(len(edges_s) - 1)
    i = int(np.searchsorted(edges_s, start_s, side="right")) - 1
    if 0 <= i < len(out):
        out[i] = energy_j
    return out


def shared_jobs(jobs: Iterable[JobEnergy]) -> set[str]:
    """Jobs that shared a node: not exclusive, or overlapping another job on a node."""
    flagged: set[str] = set()
    by_node: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for job in jobs:
        if job.exclusive is False:
            flagged.add(job.key)
        for node in job.nodes:
            by_node[node].append((job.start_s, job.end_s, job.key))
    for runs in by_node.values():
        runs.sort()
        reach, reach_key = -np.inf, ""
        for start, end, key in runs:
            if start < reach:
                flagged.update((key, reach_key))
            if end > reach:
                reach, reach_key = end, key
    return flagged


def unusable(job: JobEnergy, shared: set[str]) -> bool:
    """A job whose energy cannot calibrate a node: no usable energy, not final, or shared."""
    return job.energy_j is None or job.complete is False or job.key in shared


def node_grid(
    jobs: Sequence[JobEnergy],
    node_meters: Mapping[str, MeterSeries],
    nodes: Sequence[str],
    edges_s: np.ndarray,
    shared: set[str],
) -> NodeGrid:
    """Metered and attributed energy per node and interval (see the module docstring)."""
    index = {node: i for i, node in enumerate(nodes)}
    n_bins = len(edges_s) - 1
    metered = np.full((len(nodes), n_bins), np.nan)
    covered = np.zeros((len(nodes), n_bins))
    for node, series in node_meters.items():
        if node in index:
            e = np.interp(edges_s, series.t_s, series.energy_j)
            c = np.interp(edges_s, series.t_s, series.covered_s)
            metered[index[node]] = np.diff(e)
            covered[index[node]] = np.diff(c)
    attributed = np.zeros((len(nodes), n_bins))
    clean = np.ones((len(nodes), n_bins), dtype=bool)
    runs: dict[int, list[tuple[float, float]]] = defaultdict(list)
    lo, hi = float(edges_s[0]), float(edges_s[-1])
    for job in jobs:
        if not job.nodes or job.end_s < lo or job.start_s > hi:
            continue
        rows = np.array([index[n] for n in job.nodes if n in index], dtype=np.intp)
        if job.energy_j is not None:
            share = spread(edges_s, job.start_s, job.end_s, job.energy_j / len(job.nodes))
            attributed[rows] += share
        if unusable(job, shared):
            touched = overlap_s(edges_s, job.start_s, job.end_s) > 0
            clean[np.ix_(rows, touched)] = False
        for row in rows:
            runs[row].append((job.start_s, job.end_s))
    busy = np.zeros((len(nodes), n_bins))
    for row, intervals in runs.items():
        for start, end in _union(intervals):
            busy[row] += overlap_s(edges_s, start, end)
    return NodeGrid(tuple(nodes), edges_s, metered, covered, attributed, busy, clean)


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def compare_jobs(
    jobs: Sequence[JobEnergy],
    node_meters: Mapping[str, MeterSeries],
    node_map: NodeMap,
    window_s: tuple[float, float],
    shared: set[str],
    *,
    min_duration_s: float,
    min_coverage: float,
) -> pd.DataFrame:
    """One row per job: Slurm's energy next to the energy its nodes' meters measured over its
    run. ``comparable`` marks jobs where that comparison means something: usable and final
    energy, exclusive nodes, inside the window, long enough for the meters' sample period,
    every node metered over at least ``min_coverage`` of the run."""
    rows = []
    for job in jobs:
        inside = job.start_s >= window_s[0] and job.end_s <= window_s[1]
        duration = job.end_s - job.start_s
        metered = 0.0
        coverage = 1.0 if job.nodes else 0.0
        for node in job.nodes:
            series = node_meters.get(node)
            if series is None:
                coverage = 0.0
                continue
            start, end = np.array([job.start_s]), np.array([job.end_s])
            metered += run_energy_j(series, job.start_s, job.end_s)
            if duration > 0:
                covered = float(series.covered_between(start, end)[0])
                coverage = min(coverage, covered / duration)
        unknown = [n for n in job.nodes if n not in node_map.nodes]
        comparable = (
            job.status == "measured"
            and job.complete is not False
            and job.key not in shared
            and inside
            and duration >= min_duration_s
            and coverage >= min_coverage
            and metered > 0
        )
        rows.append(
            {
                "job": job.key,
                "job_id": job.job_id,
                "partition": job.partition or "",
                "user": job.user or "",
                "account": job.account or "",
                "nodes": len(job.nodes),
                "first_node": job.nodes[0] if job.nodes else "",
                "start_s": job.start_s,
                "end_s": job.end_s,
                "status": job.status,
                "complete": job.complete,
                "shared": job.key in shared,
                "inside_window": inside,
                "unknown_nodes": ",".join(unknown),
                "reported_j": job.energy_j,
                "metered_j": metered if coverage > 0 else None,
                "meter_coverage": coverage,
                "comparable": comparable,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["error_j"] = frame["reported_j"] - frame["metered_j"]
    frame["ratio"] = frame["reported_j"] / frame["metered_j"]
    return frame


def run_energy_j(series: MeterSeries, start_s: float, end_s: float) -> float:
    """Energy a node's meter measured over a run.

    A sample that a run starts (or ends) inside holds the average of two powers. Spreading it
    uniformly would hand the run a share of its neighbour's power and, since jobs draw more
    than idle nodes, systematically under-meter every job by about a third of a sample
    period of its excess power per edge. Instead such a sample is split in proportion to the
    power measured in the whole samples just inside and just outside the run (back-to-back
    samples only; across a gap the uniform split stays).
    """
    window_start, window_end = np.array([start_s]), np.array([end_s])
    energy = float(series.energy_between(window_start, window_end)[0])
    t, w, hold = series.sample_t_s, series.sample_w, series.sample_len_s
    first = int(np.searchsorted(t, start_s, side="right")) - 1
    last = int(np.searchsorted(t, end_s, side="right")) - 1
    if first < 1 or last > len(t) - 2 or last - first < 2:
        return energy
    contiguous = np.isclose(t[1:], t[:-1] + hold[:-1])
    inside = t[first] + hold[first] - start_s
    if 0 < inside < hold[first] and contiguous[first - 1] and contiguous[first]:
        energy += _edge(w[first], hold[first], inside, w[first + 1], w[first - 1])
    inside = end_s - t[last]
    if 0 < inside < hold[last] and contiguous[last - 1] and contiguous[last]:
        energy += _edge(w[last], hold[last], inside, w[last - 1], w[last + 1])
    return energy


def _edge(sample_w: float, length_s: float, inside_s: float, in_w: float, out_w: float) -> float:
    """Correction to the uniform split of one edge sample (J)."""
    weight_in, weight_out = in_w * inside_s, out_w * (length_s - inside_s)
    if weight_in + weight_out <= 0:
        return 0.0
    share = sample_w * length_s * weight_in / (weight_in + weight_out)
    return share - sample_w * inside_s


def unknown_node_issues(
    jobs: Iterable[JobEnergy], node_meters: Mapping[str, MeterSeries], node_map: NodeMap
) -> list[QualityIssue]:
    """Findings for meters and jobs on nodes the mapping does not know (kept, rolled up
    under rack ``unknown``)."""
    issues = []
    for node, series in sorted(node_meters.items()):
        if node not in node_map.nodes:
            issues.append(
                QualityIssue(
                    kind="unknown_meter",
                    subject=f"node {node}",
                    detail="meter for a node not in the mapping; kept under rack 'unknown'",
                    count=series.samples,
                    energy_j=series.total_energy_j,
                )
            )
    jobs_on: dict[str, int] = defaultdict(int)
    for job in jobs:
        for node in job.nodes:
            if node not in node_map.nodes:
                jobs_on[node] += 1
    for node, count in sorted(jobs_on.items()):
        issues.append(
            QualityIssue(
                kind="unknown_job_node",
                subject=f"node {node}",
                detail="jobs ran on a node not in the mapping; kept under rack 'unknown'",
                count=count,
            )
        )
    return issues

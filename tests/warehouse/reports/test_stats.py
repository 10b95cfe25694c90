"""Statistics by hand: node calibration, job comparison figures, roll-ups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from warehouse.reports.attribution import NodeGrid
from warehouse.reports.stats import (
    Thresholds,
    calibrate_nodes,
    interval_series,
    job_statistics,
    rollup,
    worst_jobs,
)

H = 3_600.0


def grid(metered: np.ndarray, attributed: np.ndarray, busy: np.ndarray) -> NodeGrid:
    n_bins = metered.shape[1]
    edges = np.arange(n_bins + 1) * H
    return NodeGrid(
        nodes=tuple(f"n{i}" for i in range(metered.shape[0])),
        edges_s=edges,
        metered_j=metered,
        covered_s=np.full(metered.shape, H),
        attributed_j=attributed,
        busy_s=busy,
        clean=np.ones(metered.shape, dtype=bool),
    )


def workload(n_bins: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A node busy for a varying share of each hour at 400 W (attributed J, idle s)."""
    busy = (np.arange(n_bins) % 5) / 4 * H  # 0, 900, 1800, 2700, 3600 s busy
    return busy * 400.0, H - busy, busy  # type: ignore[return-value]


def test_calibration_recovers_slurm_bias_and_idle_power_exactly() -> None:
    attributed_true, idle, busy = workload()
    # Slurm reports 8 % more than the truth; the meter reads truth + 150 W idle.
    metered = attributed_true + 150.0 * idle
    g = grid(metered[None, :], 1.08 * attributed_true[None, :], busy[None, :])
    row = calibrate_nodes(g, Thresholds(), origin_s=0).iloc[0]
    assert row["ratio"] == pytest.approx(1.08)
    assert row["bias"] == pytest.approx(0.08)
    assert row["idle_power_w"] == pytest.approx(150.0)
    assert row["drift_per_day"] == pytest.approx(0.0, abs=1e-9)
    assert row["busy_metered_j"] == pytest.approx(attributed_true.sum())


def test_calibration_recovers_meter_drift_exactly() -> None:
    attributed, idle, busy = workload(72)
    days = (np.arange(72) + 0.5) / 24
    metered = (1 + 0.02 * days) * (attributed + 150.0 * idle)  # +2 %/day, Slurm exact
    g = grid(metered[None, :], attributed[None, :], busy[None, :])
    row = calibrate_nodes(g, Thresholds(), origin_s=0).iloc[0]
    assert row["drift_per_day"] == pytest.approx(0.02, rel=1e-6)
    assert row["drift_t"] > 1e3  # noise-free: essentially infinitely significant


def test_calibration_needs_enough_clean_intervals() -> None:
    attributed, idle, busy = workload(5)
    g = grid((attributed + idle)[None, :], attributed[None, :], busy[None, :])
    row = calibrate_nodes(g, Thresholds(), origin_s=0).iloc[0]
    assert math.isnan(row["ratio"]) and row["calibration_bins"] == 5


def comparable_jobs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "job": ["c:1:0", "c:2:0", "c:3:0", "c:4:0", "c:5:0"],
            "reported_j": [100.0, 200.0, 300.0, 20.0, None],
            "metered_j": [100.0, 250.0, 250.0, 100.0, 80.0],
            "comparable": [True, True, True, False, False],
            "status": ["measured", "measured", "measured", "measured", "missing"],
            "complete": [True, True, True, False, None],
            "shared": [False, False, False, True, False],
            "inside_window": [True, True, True, True, False],
            "unknown_nodes": ["", "", "", "", "x1"],
        }
    ).assign(
        error_j=lambda f: f["reported_j"] - f["metered_j"],
        ratio=lambda f: f["reported_j"] / f["metered_j"],
    )


def test_job_statistics_by_hand() -> None:
    s = job_statistics(comparable_jobs(), Thresholds(job_ratio=0.1))
    # Comparable: 100/100, 200/250, 300/250.
    assert s["reported_j"] == 600 and s["metered_j"] == 600
    assert s["ratio"] == pytest.approx(1.0) and s["bias"] == pytest.approx(0.0)
    assert s["mape"] == pytest.approx((0 + 50 / 250 + 50 / 250) / 3)
    assert s["correlation"] == pytest.approx(math.sqrt(3) / 2)  # worked out in the docstring
    assert s["outliers"] == 2  # 0.8 and 1.2 are beyond 10 %
    assert s["by_status"] == {"measured": 4, "missing": 1}
    assert (s["incomplete"], s["shared"], s["outside_window"], s["on_unknown_nodes"]) == (
        1,
        1,
        1,
        1,
    )


def test_worst_jobs_lists_out_of_tolerance_and_incomplete_largest_error_first() -> None:
    worst = worst_jobs(comparable_jobs(), Thresholds(job_ratio=0.1))
    assert worst["job"].tolist() == ["c:4:0", "c:2:0", "c:3:0"]
    assert worst["reason"].tolist() == ["incomplete", "ratio", "ratio"]


def test_rollup_by_hand() -> None:
    nodes = pd.DataFrame(
        {
            "node": ["a", "b", "c"],
            "rack": ["r1", "r1", "r2"],
            "room": ["h", "h", "h"],
            "partition": ["cpu", "cpu", "gpu"],
            "metered": [True, True, True],
            "metered_j": [1_000.0, 3_000.0, 2_000.0],
            "attributed_j": [600.0, 2_400.0, 0.0],
            "unattributed_j": [400.0, 600.0, 2_000.0],
            "coverage": [1.0, 0.5, 1.0],
            "ratio": [1.0, 1.1, np.nan],
            "flag": ["", "bias", ""],
        }
    )
    r = rollup(nodes, "rack").set_index("group")
    assert r.loc["r1", "metered_j"] == 4_000 and r.loc["r1", "attributed_j"] == 3_000
    assert r.loc["r1", "attributed_share"] == pytest.approx(0.75)
    assert r.loc["r1", "coverage"] == pytest.approx(0.75)
    # Energy-weighted ratio: (600 x 1.0 + 2400 x 1.1) / 3000 = 1.08.
    assert r.loc["r1", "ratio"] == pytest.approx(1.08)
    assert math.isnan(r.loc["r2", "ratio"]) and r.loc["r1", "flagged_nodes"] == 1
    total = rollup(nodes, "total").iloc[0]
    assert total["metered_j"] == 6_000 and total["unattributed_j"] == 3_000


def test_interval_series_counts_only_metered_nodes() -> None:
    metered = np.array([[10.0, 20.0], [np.nan, np.nan]])
    attributed = np.array([[4.0, 5.0], [7.0, 7.0]])
    g = grid(metered, attributed, np.zeros((2, 2)))
    g = NodeGrid(
        g.nodes, g.edges_s, metered, np.array([[H, H], [0, 0]]), attributed, g.busy_s, g.clean
    )
    s = interval_series(g)
    assert s["metered_j"].tolist() == [10, 20]
    assert s["attributed_j"].tolist() == [4, 5] and s["attributed_all_j"].tolist() == [11, 12]
    assert s["unattributed_j"].tolist() == [6, 15]
    assert s["coverage"].tolist() == [0.5, 0.5]

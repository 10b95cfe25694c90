"""Attribution of job energy to nodes and intervals, with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from warehouse.reports.attribution import (
    compare_jobs,
    interval_edges,
    node_grid,
    run_energy_j,
    shared_jobs,
    spread,
    unknown_node_issues,
)
from warehouse.reports.jobs import JobEnergy
from warehouse.reports.mapping import mapping_from_rows
from warehouse.reports.meters import MeterSeries

H = 3_600.0


def job(key: str, nodes: tuple[str, ...], start: float, end: float, **kw: object) -> JobEnergy:
    energy = kw.pop("energy_j", None)
    status = kw.pop("status", "measured" if energy else "missing")
    return JobEnergy(
        key=key,
        job_id=int(key[1:]),
        partition="cpu",
        nodes=nodes,
        start_s=start,
        end_s=end,
        energy_j=energy,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        exclusive=kw.pop("exclusive", True),  # type: ignore[arg-type]
        complete=kw.pop("complete", True),  # type: ignore[arg-type]
    )


def power_meter(node: str, watts: list[float], period: float = 600.0) -> MeterSeries:
    t = np.arange(len(watts)) * period
    w = np.array(watts, dtype=float)
    xs = np.append(t, t[-1] + period)
    e = np.r_[0.0, np.cumsum(w * period)]
    return MeterSeries(
        "node", node, "power", "", xs, e, xs - xs[0], len(t), t, w, np.full(len(t), period)
    )


def test_spread_is_uniform_over_the_run() -> None:
    edges = interval_edges(0, 3 * H, H)
    # 2 h run from 00:30: a quarter, a half, a quarter.
    assert spread(edges, 0.5 * H, 2.5 * H, 8_000).tolist() == [2_000, 4_000, 2_000]
    # Partly outside the window: only the inside part is returned.
    assert spread(edges, 2.5 * H, 3.5 * H, 1_000).tolist() == [0, 0, 500]
    # A zero-length run lands in the interval holding it.
    assert spread(edges, 1.2 * H, 1.2 * H, 7).tolist() == [0, 7, 0]


def test_node_grid_by_hand() -> None:
    edges = interval_edges(0, 3 * H, H)
    jobs = [
        # 28,800 J over nodes a and b from 00:30 to 02:30: 14,400 J per node, 2 W each.
        job("j1", ("a", "b"), 0.5 * H, 2.5 * H, energy_j=28_800),
        # 7,200 J on a from 02:30 to 03:30: half inside the window.
        job("j2", ("a",), 2.5 * H, 3.5 * H, energy_j=7_200),
        # Missing energy on b for the first 10 minutes: b's first hour is not clean.
        job("j3", ("b",), 0, 600),
    ]
    meters = {"a": power_meter("a", [10.0] * 18)}  # 10 W for 3 h; b has no meter
    g = node_grid(jobs, meters, ["a", "b"], edges, shared_jobs(jobs))
    assert g.attributed_j.tolist() == [[3_600, 7_200, 7_200], [3_600, 7_200, 3_600]]
    assert g.metered_j[0].tolist() == [36_000, 36_000, 36_000]
    assert np.isnan(g.metered_j[1]).all()
    assert g.unattributed_j[0].tolist() == [32_400, 28_800, 28_800]
    assert g.busy_s.tolist() == [[1_800, 3_600, 3_600], [2_400, 3_600, 1_800]]
    assert g.idle_s.tolist() == [[1_800, 0, 0], [1_200, 0, 1_800]]
    assert g.clean.tolist() == [[True, True, True], [False, True, True]]
    frame = g.to_frame()
    assert len(frame) == 6 and frame["coverage"].iloc[:3].tolist() == [1, 1, 1]


def test_shared_jobs_not_exclusive_or_overlapping() -> None:
    jobs = [
        job("j1", ("a",), 0, 100, energy_j=1),
        job("j2", ("a",), 100, 200, energy_j=1),  # back to back: not shared
        job("j3", ("b",), 0, 100, energy_j=1),
        job("j4", ("b", "c"), 50, 150, energy_j=1),  # overlaps j3 on b
        job("j5", ("d",), 0, 10, energy_j=1, exclusive=False),
    ]
    assert shared_jobs(jobs) == {"j3", "j4", "j5"}


def test_run_energy_splits_edge_samples_by_neighbouring_power() -> None:
    # Truth: 100 W until t=450, 400 W from 450 to 1350, 100 W after. 300 s samples hold
    # averages, so the samples at 300 and 1200 read 250 W. The run's true energy is
    # 900 s x 400 W = 360,000 J; a uniform split would give 315,000 J.
    meter = power_meter("a", [100, 250, 400, 400, 250, 100, 100], period=300)
    assert float(meter.energy_between(np.array([450.0]), np.array([1350.0]))[0]) == 315_000
    assert run_energy_j(meter, 450, 1350) == pytest.approx(360_000)


def test_compare_jobs_flags_and_ratio() -> None:
    meters = {"a": power_meter("a", [100, 250, 400, 400, 250, 100, 100], period=300)}
    node_map = mapping_from_rows([("a", "r1", "room1")])
    jobs = [
        job("j1", ("a",), 450, 1350, energy_j=396_000),  # Slurm 10 % above the meter
        job("j2", ("a",), 450, 1350, energy_j=1, complete=False),
        job("j3", ("zz",), 450, 1350, energy_j=5),  # no meter, not in the mapping
    ]
    frame = compare_jobs(
        jobs, meters, node_map, (0, 2100), set(), min_duration_s=600, min_coverage=0.95
    ).set_index("job")
    assert frame.loc["j1", "ratio"] == pytest.approx(1.1)
    assert frame.loc["j1", "error_j"] == pytest.approx(36_000)
    assert frame["comparable"].to_dict() == {"j1": True, "j2": False, "j3": False}
    assert frame.loc["j3", "unknown_nodes"] == "zz" and frame.loc["j3", "meter_coverage"] == 0
    short = compare_jobs(
        jobs[:1], meters, node_map, (0, 2100), set(), min_duration_s=1_000, min_coverage=0.95
    )
    assert not short["comparable"].iloc[0]


def test_unknown_nodes_are_reported_with_their_energy() -> None:
    meters = {"ghost": power_meter("ghost", [10.0, 10.0])}
    node_map = mapping_from_rows([("a", "r1", "room1")])
    issues = unknown_node_issues([job("j1", ("a", "x1"), 0, 10, energy_j=1)], meters, node_map)
    assert [(i.kind, i.subject, i.count) for i in issues] == [
        ("unknown_meter", "node ghost", 2),
        ("unknown_job_node", "node x1", 1),
    ]
    assert issues[0].energy_j == pytest.approx(12_000)


def test_empty_window_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        interval_edges(10, 10, H)

"""The synthetic machine room is consistent with its jobs, and the report recovers its truth."""

from __future__ import annotations

import numpy as np
import pytest

from warehouse.reports.machine_room import MachineRoom, job_records
from warehouse.reports.meters import parse_meters
from warehouse.reports.report import Validation


def test_room_is_consistent_with_the_jobs(room: MachineRoom) -> None:
    t = room.truth
    assert t.drift_node.startswith("cn") and t.biased_node != t.drift_node
    # Every node's true energy is at least its idle power over the window.
    window_s = (t.end_at - t.start_at).total_seconds()
    parts = dict(zip(room.mapping["node"], room.mapping["partition"], strict=True))
    idle_w = {"cpu": 140.0, "gpu": 260.0, "bigmem": 190.0, "shared": 150.0}
    for node, energy in t.node_energy_j.items():
        assert energy >= idle_w[parts[node]] * window_s * 0.999
    # The biased node's jobs report 8 % more than their true energy.
    on_biased = [
        j
        for j in room.jobs
        if t.biased_node in j.nodes
        and j.energy_complete
        and j.energy_record_j
        and j.energy_record_j < 10**18
    ]
    assert on_biased
    for j in on_biased:
        assert j.energy_record_j == pytest.approx(j.energy_true_j * 1.08, abs=1)
    # Normalized records carry the same energies.
    records = {r.job_id: r for r in job_records(on_biased)}
    assert all(records[j.job_id].energy_j == j.energy_record_j for j in on_biased)


def test_room_meters_parse_with_the_injected_findings_only(room: MachineRoom) -> None:
    m = parse_meters(room.meters)
    kinds = {i.kind for i in m.issues}
    assert kinds == {"gap", "counter_wrap", "counter_reset"}
    t = room.truth
    assert sum(i.count for i in m.issues if i.kind == "counter_wrap") == t.pdu_wraps
    (reset,) = [i for i in m.issues if i.kind == "counter_reset"]
    assert reset.subject == f"rack {t.pdu_reset[0]}"  # type: ignore[index]
    gap_nodes = {i.subject for i in m.issues if i.kind == "gap"}
    assert gap_nodes == {f"node {n}" for n, _, _ in t.gaps}


def test_report_recovers_injected_bias_and_drift_within_one_percent(
    room: MachineRoom, room_validation: Validation
) -> None:
    t = room.truth
    nodes = room_validation.nodes.set_index("node")
    biased = nodes.loc[t.biased_node]
    drifting = nodes.loc[t.drift_node]
    assert abs(biased["bias"] - t.slurm_bias) < 0.01
    assert abs(biased["ratio"] / (1 + t.slurm_bias) - 1) < 0.01
    assert abs(drifting["drift_per_day"] - t.drift_per_day) < 0.01
    assert "drift" in drifting["flag"] and "bias" in biased["flag"]
    assert "drift" not in biased["flag"]
    # Nobody else is flagged, and the healthy nodes agree with Slurm.
    flagged = set(nodes.index[nodes["flag"].isin(["bias", "drift", "drift,bias"])])
    assert flagged == {t.biased_node, t.drift_node}
    healthy = nodes.drop(index=[t.biased_node, t.drift_node])["ratio"].dropna()
    assert len(healthy) > 300
    assert abs(float(np.median(healthy)) - 1) < 0.002


def test_report_recovers_pue_and_rack_energy(
    room: MachineRoom, room_validation: Validation
) -> None:
    total = room_validation.rollups["total"].iloc[0]
    assert total["pue"] == pytest.approx(room.truth.pue, rel=0.01)
    # Node meters (noisy, with gaps) and PDU counters (wraps, a reset) agree within 1 %.
    racks = room_validation.rollups["rack"]
    assert (racks["pdu_over_nodes"] - 1).abs().max() < 0.01
    # Node meters recover the true energy of every node without a gap or drift within 1 %.
    t = room.truth
    skip = {t.drift_node} | {n for n, _, _ in t.gaps}
    nodes = room_validation.nodes.set_index("node")
    errors = [
        nodes.loc[n, "metered_j"] / e - 1 for n, e in t.node_energy_j.items() if n not in skip
    ]
    assert max(abs(e) for e in errors) < 0.01


def test_job_residuals_centre_on_zero(room_validation: Validation) -> None:
    jobs = room_validation.jobs
    comparable = jobs[jobs["comparable"]]
    assert len(comparable) > 300
    assert abs(float((comparable["ratio"] - 1).median())) < 0.002
    s = room_validation.job_stats
    assert s["correlation"] > 0.999 and s["mape"] < 0.02


def test_daily_intervals_keep_the_hourly_calibration(
    room: MachineRoom, room_validation: Validation
) -> None:
    from warehouse.reports.mapping import parse_mapping
    from warehouse.reports.report import validate

    t = room.truth
    daily = validate(
        job_records(room.jobs),
        parse_meters(room.meters),
        parse_mapping(room.mapping),
        t.start_at,
        t.end_at,
        interval="day",
    )
    hours = (t.end_at - t.start_at).total_seconds() / 3_600
    assert len(daily.intervals) == int(np.ceil(hours / 24))
    assert len(room_validation.intervals) == int(hours)
    # Same energy in coarser intervals; node calibration is always hourly.
    assert daily.intervals["metered_j"].sum() == pytest.approx(
        room_validation.intervals["metered_j"].sum()
    )
    assert daily.nodes["ratio"].equals(room_validation.nodes["ratio"])

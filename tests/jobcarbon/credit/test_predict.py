"""Prediction from similar past jobs, hand-computed."""

from __future__ import annotations

import pytest

from jobcarbon.credit.predict import JobRequest, PastJob, predict, quantile

REQ = JobRequest(
    "alice", "proj", "cpu", nodes=2, cpus=256, gpus=0, time_limit_s=7200, job_name="lmp"
)


def past(
    user: str = "alice",
    name: str = "lmp",
    power_w_per_node: float = 400.0,
    ratio: float = 0.5,
    nodes: int = 1,
    account: str = "proj",
    partition: str = "cpu",
    limit: int = 3600,
    cpus: int = 128,
    shared: bool = False,
) -> PastJob:
    elapsed = int(limit * ratio)
    return PastJob(
        user,
        account,
        partition,
        name,
        nodes,
        cpus,
        limit,
        elapsed,
        power_w_per_node * nodes * elapsed,
        shared,
    )


def test_same_user_and_name_first() -> None:
    history = [past(power_w_per_node=p, ratio=r) for p, r in ((300, 0.5), (400, 0.5), (500, 0.25))]
    history += [past(name="other", power_w_per_node=10_000)] * 5
    pred = predict(REQ, history)
    assert pred.level == "user+name" and pred.samples == 3
    # implied energies for 2 nodes x 7200 s limit: 300*2*3600, 400*2*3600, 500*2*1800
    assert sorted([2_160_000, 2_880_000, 1_800_000])[1] == 2_160_000
    assert pred.energy_it_j == pytest.approx(2_160_000)
    assert pred.runtime_s == pytest.approx(3600)
    assert pred.energy_low_j == pytest.approx(quantile([1.8e6, 2.16e6, 2.88e6], 0.1))
    assert pred.energy_high_j == pytest.approx(quantile([1.8e6, 2.16e6, 2.88e6], 0.9))
    assert pred.energy_low_j <= pred.energy_it_j <= pred.energy_high_j


def test_falls_back_by_level() -> None:
    two_own = [past(), past()]
    assert predict(REQ, [*two_own, past(name="x")]).level == "user+partition"
    others = [past(user="bob"), past(user="bob"), past(user="carol")]
    assert predict(REQ, others).level == "account+partition"
    foreign = [past(user="bob", account="zz")] * 3
    assert predict(REQ, foreign).level == "partition"
    wrong_partition = [past(partition="gpu")] * 10
    pred = predict(REQ, wrong_partition, default_power_w_per_node=500.0)
    # default: 500 W x 2 nodes x 0.5 x 7200 s
    assert pred.level == "default" and pred.energy_it_j == pytest.approx(3_600_000)


def test_shared_jobs_scale_by_cpus() -> None:
    req = JobRequest("alice", "proj", "shared", 1, 8, 0, 3600, "r")
    # 4 cpus drew 100 W -> 25 W per cpu; 8 cpus x 25 W x 0.5 x 3600 s
    history = [past(partition="shared", name="r", cpus=4, power_w_per_node=100.0, shared=True)] * 3
    assert predict(req, history).energy_it_j == pytest.approx(8 * 25 * 1800)


def test_unusable_history_is_ignored() -> None:
    bad = [
        PastJob("alice", "proj", "cpu", "lmp", 1, 128, 3600, 0, 1e6),  # never ran
        PastJob("alice", "proj", "cpu", "lmp", 1, 128, 3600, 100, 0),  # no energy
        PastJob("alice", "proj", "cpu", "lmp", 1, 128, 3600, 100, 1.8e19),  # bogus counter
    ]
    assert predict(REQ, bad).level == "default"


def test_runtime_never_exceeds_the_limit() -> None:
    history = [past(ratio=1.2)] * 3  # timeouts run slightly past the limit
    assert predict(REQ, history).runtime_s == pytest.approx(7200)

"""Predict a job's IT energy from its request and similar past jobs (pure).

Each similar past job implies an energy for the new request: its power per unit (per node on
exclusive nodes, per CPU on shared nodes) x the request's units x its runtime/time-limit ratio
x the request's time limit. The prediction is the median of those implied energies and the
band their 10th-90th percentiles. Similar means, in order: the same user, job name and
partition; the same user and partition; the same account and partition; the partition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Level = Literal["user+name", "user+partition", "account+partition", "partition", "default"]
#: Above this a past job's power is a counter glitch, not a measurement.
MAX_POWER_W_PER_NODE: Final = 50_000.0


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What ``sbatch`` asks for."""

    user: str
    account: str
    partition: str
    nodes: int
    cpus: int
    gpus: int
    time_limit_s: int
    job_name: str


@dataclass(frozen=True, slots=True)
class PastJob:
    """A finished job from the warehouse, as prediction needs it."""

    user: str
    account: str
    partition: str
    job_name: str
    nodes: int
    cpus: int
    time_limit_s: int
    elapsed_s: int
    energy_it_j: float
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted IT energy (J) and runtime (s), with a 10th-90th percentile band."""

    energy_it_j: float
    energy_low_j: float
    energy_high_j: float
    runtime_s: float
    level: Level
    samples: int

    @property
    def power_w(self) -> float:
        """Mean IT power over the predicted runtime."""
        return self.energy_it_j / self.runtime_s if self.runtime_s > 0 else 0.0


def usable(job: PastJob) -> bool:
    """A past job whose energy and runtime can teach anything."""
    if job.elapsed_s <= 0 or job.time_limit_s <= 0 or job.energy_it_j <= 0:
        return False
    if job.nodes <= 0 or job.cpus <= 0:
        return False
    power_per_node = job.energy_it_j / (job.elapsed_s * job.nodes)
    return math.isfinite(power_per_node) and power_per_node <= MAX_POWER_W_PER_NODE


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of an ascending, non-empty sequence."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _implied(job: PastJob, request: JobRequest) -> tuple[float, float]:
    """(energy J, runtime s) the past job implies for the request."""
    ratio = min(1.0, job.elapsed_s / job.time_limit_s)
    runtime_s = ratio * request.time_limit_s
    if job.shared:
        power_w = job.energy_it_j / job.elapsed_s / job.cpus * max(1, request.cpus)
    else:
        power_w = job.energy_it_j / job.elapsed_s / job.nodes * max(1, request.nodes)
    return power_w * runtime_s, runtime_s


def _levels(request: JobRequest) -> list[tuple[Level, Callable[[PastJob], bool]]]:
    return [
        ("user+name", lambda j: j.user == request.user and j.job_name == request.job_name),
        ("user+partition", lambda j: j.user == request.user),
        ("account+partition", lambda j: j.account == request.account),
        ("partition", lambda j: True),
    ]


def predict(
    request: JobRequest,
    history: Iterable[PastJob],
    *,
    min_samples: int = 3,
    default_power_w_per_node: float = 500.0,
    default_runtime_ratio: float = 0.5,
) -> Prediction:
    """Predict the request's energy from ``history`` (any past jobs; only those in the
    request's partition are used). Falls back to ``default_power_w_per_node`` x nodes x
    ``default_runtime_ratio`` x time limit when the partition has fewer than ``min_samples``
    usable jobs (band: 0 to the full time limit at twice that power)."""
    pool = [j for j in history if j.partition == request.partition and usable(j)]
    for level, match in _levels(request):
        group = [j for j in pool if match(j)]
        if len(group) >= min_samples:
            implied = [_implied(j, request) for j in group]
            energies = sorted(e for e, _ in implied)
            runtimes = sorted(r for _, r in implied)
            return Prediction(
                energy_it_j=quantile(energies, 0.5),
                energy_low_j=quantile(energies, 0.1),
                energy_high_j=quantile(energies, 0.9),
                runtime_s=quantile(runtimes, 0.5),
                level=level,
                samples=len(group),
            )
    runtime_s = default_runtime_ratio * request.time_limit_s
    power_w = default_power_w_per_node * max(1, request.nodes)
    return Prediction(
        energy_it_j=power_w * runtime_s,
        energy_low_j=0.0,
        energy_high_j=2 * power_w * request.time_limit_s,
        runtime_s=runtime_s,
        level="default",
        samples=0,
    )

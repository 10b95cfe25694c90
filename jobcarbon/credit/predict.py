"""Predict a job's IT energy from its request and similar past jobs (pure).

Each similar past job implies an energy for the new request: its power per unit (per node on
exclusive nodes, per CPU on shared nodes) x the request's units x its runtime/time-limit ratio
x the request's time limit. The prediction is the median of those implied energies and the
band their 10th-90th percentiles. Similar means, in order: the same user, job name and
partition; the same user and partition; the same account and partition; the partition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

Level = Literal["user+name", "user+partition", "account+partition", "partition", "default"]
#: Above this a past job's power is a counter glitch, not a measurement.
MAX_POWER_W_PER_NODE: Final = 50_000.0
#: How many of the most recent jobs of the user, the account and the partition (each, in
#: the request's partition) a prediction reads.
HISTORY_LIMIT: Final = 100


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


class Sorted(Protocol):
    """An ascending sequence of floats, as ``quantile`` reads it."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int, /) -> float: ...


def quantile(sorted_values: Sorted, q: float) -> float:
    """Linear-interpolation quantile of an ascending, non-empty sequence."""
    last = len(sorted_values) - 1
    pos = q * last
    lo = int(pos)  # floor: pos >= 0
    hi = lo + 1 if lo < last else last
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class HistoryColumns:
    """Past jobs of one partition as columns (the in-process history index hands these out
    without building ``PastJob`` objects). ``user_match`` / ``account_match`` / ``name_match``:
    the job has the request's user / account / user and job name."""

    user_match: npt.NDArray[np.bool_]
    name_match: npt.NDArray[np.bool_]
    account_match: npt.NDArray[np.bool_]
    shared: npt.NDArray[np.bool_]
    #: ``per_unit_rate`` of each job: energy per unit (CPU on shared nodes, else node) and
    #: second of time limit, and runtime / limit.
    rate: npt.NDArray[np.float64]
    runtime_ratio: npt.NDArray[np.float64]

    @classmethod
    def from_jobs(cls, request: JobRequest, jobs: Sequence[PastJob]) -> HistoryColumns:
        """Columns of ``jobs`` (already filtered to the partition and ``usable``)."""
        user = np.array([j.user == request.user for j in jobs], dtype=bool)
        shared = np.array([j.shared for j in jobs], dtype=bool)
        rate, ratio = per_unit_rate(
            np.array([j.nodes for j in jobs], dtype=np.float64),
            np.array([j.cpus for j in jobs], dtype=np.float64),
            np.array([j.time_limit_s for j in jobs], dtype=np.float64),
            np.array([j.elapsed_s for j in jobs], dtype=np.float64),
            np.array([j.energy_it_j for j in jobs], dtype=np.float64),
            shared,
        )
        return cls(
            user_match=user,
            name_match=user & np.array([j.job_name == request.job_name for j in jobs], bool),
            account_match=np.array([j.account == request.account for j in jobs], dtype=bool),
            shared=shared,
            rate=rate,
            runtime_ratio=ratio,
        )


def per_unit_rate(
    nodes: npt.NDArray[np.float64],
    cpus: npt.NDArray[np.float64],
    time_limit_s: npt.NDArray[np.float64],
    elapsed_s: npt.NDArray[np.float64],
    energy_it_j: npt.NDArray[np.float64],
    shared: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per past job, the request-independent half of ``_implied``: its power per unit (per
    CPU on shared nodes, else per node) x its runtime / time limit (at most 1), i.e. the
    energy per unit and per second of time limit (J/s), and that ratio (meaningless for
    unusable jobs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        power_w = energy_it_j / elapsed_s
        ratio = np.minimum(1.0, elapsed_s / time_limit_s)
        return np.where(shared, power_w / cpus, power_w / nodes) * ratio, ratio


def usable_columns(
    nodes: npt.NDArray[np.float64],
    cpus: npt.NDArray[np.float64],
    time_limit_s: npt.NDArray[np.float64],
    elapsed_s: npt.NDArray[np.float64],
    energy_it_j: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_]:
    """``usable`` over columns (same rule, element by element)."""
    ok = (elapsed_s > 0) & (time_limit_s > 0) & (energy_it_j > 0) & (nodes > 0) & (cpus > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        power_per_node = energy_it_j / (elapsed_s * nodes)
    return ok & np.isfinite(power_per_node) & (power_per_node <= MAX_POWER_W_PER_NODE)


@dataclass(frozen=True, slots=True)
class LevelRows:
    """The similar past jobs a prediction uses, independent of the request's size: the
    first level with enough of them, their rates (``per_unit_rate``) sorted apart for
    exclusive and shared nodes, and their runtime / limit ratios sorted. The in-process
    index keeps these per (user, account, partition, job name)."""

    level: Level
    samples: int
    exclusive: list[float]
    shared: list[float]
    runtime_ratio: list[float]


def level_rows(cols: HistoryColumns, min_samples: int = 3) -> LevelRows | None:
    """The first of user+name, user+partition, account+partition, partition with at
    least ``min_samples`` jobs (None: fewer in the whole partition)."""
    levels: tuple[tuple[Level, npt.NDArray[np.bool_] | None], ...] = (
        ("user+name", cols.name_match),
        ("user+partition", cols.user_match),
        ("account+partition", cols.account_match),
        ("partition", None),
    )
    for level, mask in levels:
        samples = len(cols.shared) if mask is None else int(np.count_nonzero(mask))
        if samples >= min_samples:
            rate, ratio, shared = cols.rate, cols.runtime_ratio, cols.shared
            if mask is not None:
                rate, ratio, shared = rate[mask], ratio[mask], shared[mask]
            exclusive, on_shared = (
                (rate[~shared], rate[shared]) if shared.any() else (rate, rate[:0])
            )
            return LevelRows(level, samples, np.sort(exclusive).tolist(),
                             np.sort(on_shared).tolist(), np.sort(ratio).tolist())  # fmt: skip
    return None


class _Scaled:
    """``values`` x ``factor``, element by element, as ``quantile`` reads it (a positive
    factor keeps the order, so sorted values scaled are the scaled values sorted)."""

    __slots__ = ("factor", "values")

    def __init__(self, values: Sequence[float], factor: float) -> None:
        self.values, self.factor = values, factor

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> float:
        return self.values[i] * self.factor


def predict_level(
    request: JobRequest,
    rows: LevelRows | None,
    *,
    default_power_w_per_node: float = 500.0,
    default_runtime_ratio: float = 0.5,
) -> Prediction:
    """The prediction from ``rows``: each job implies its rate x the request's units
    (CPUs on shared nodes, else nodes) x its time limit, and its runtime ratio x that
    limit; the median and 10th-90th percentiles of those. The request's units x limit is
    an exact integer in float64, so each implied energy is one rounding of the exact
    product. Without rows: the default power for half the limit."""
    if rows is None:
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
    limit = float(request.time_limit_s)
    per_cpu, per_node = float(max(1, request.cpus)) * limit, float(max(1, request.nodes)) * limit
    energies: Sorted
    if not rows.shared:
        energies = _Scaled(rows.exclusive, per_node)
    elif not rows.exclusive:
        energies = _Scaled(rows.shared, per_cpu)
    else:  # both kinds: the order depends on the request's CPUs per node
        energies = sorted([x * per_node for x in rows.exclusive] +
                          [x * per_cpu for x in rows.shared])  # fmt: skip
    return Prediction(
        energy_it_j=quantile(energies, 0.5),
        energy_low_j=quantile(energies, 0.1),
        energy_high_j=quantile(energies, 0.9),
        runtime_s=quantile(_Scaled(rows.runtime_ratio, limit), 0.5),
        level=rows.level,
        samples=rows.samples,
    )


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
    return predict_columns(
        request,
        HistoryColumns.from_jobs(request, pool),
        min_samples=min_samples,
        default_power_w_per_node=default_power_w_per_node,
        default_runtime_ratio=default_runtime_ratio,
    )


def predict_columns(
    request: JobRequest,
    cols: HistoryColumns,
    *,
    min_samples: int = 3,
    default_power_w_per_node: float = 500.0,
    default_runtime_ratio: float = 0.5,
) -> Prediction:
    """``predict`` over usable past jobs of the request's partition given as columns."""
    return predict_level(
        request,
        level_rows(cols, min_samples),
        default_power_w_per_node=default_power_w_per_node,
        default_runtime_ratio=default_runtime_ratio,
    )

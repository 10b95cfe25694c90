"""Pure: what a batch changes in the roll-ups, for a whole batch at once.

A roll-up row is the sum of its facts' contributions (the rule: ``warehouse.apportion``),
so a fact that changes moves every roll-up by ``new contribution - old contribution``; a
fact that does not change moves nothing. That makes replays, duplicates and corrections
exact. ``contributions`` computes the contributions of many jobs (each with a sign) as
arrays and sums them per roll-up row (``numpy.bincount``, in input order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from warehouse.apportion import DAY, MONTH, day_date, period_day, period_of, split
from warehouse.models.rollups import COUNT_MEASURES, MEASURES
from warehouse.sink.prepare import UNRECONCILED

ROLLUP_TABLES: Final = ("rollup_user_day", "rollup_account_day", "rollup_account_month")
_N: Final = len(MEASURES)
_N_COUNTS: Final = len(COUNT_MEASURES)
#: table -> (dimension: "user" or "account", period unit)
_TABLE_KEYS: Final = {
    "rollup_user_day": ("user", DAY),
    "rollup_account_day": ("account", DAY),
    "rollup_account_month": ("account", MONTH),
}

#: table -> {(dimension id, period): measure values in ``MEASURES`` order}
RollupDelta = dict[str, dict[tuple[int, date], list[float]]]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class RollupInput(NamedTuple):
    """The columns of a fact that its roll-up contribution depends on."""

    user_id: int
    account_id: int
    submit_epoch: int
    start_epoch: int | None
    end_epoch: int | None
    cpus: int | None
    gpus: int | None
    energy_it_j: int | None
    energy_facility_j: float | None
    co2e_g: float | None
    cost: float | None
    jobcomp_energy_status: str
    reconcile_status: str


ROLLUP_INPUT_COLUMNS: Final = RollupInput._fields


class RollupInputs(NamedTuple):
    """Roll-up inputs of many jobs as arrays (NaN where the column is NULL), each with the
    sign its contribution is added with (+1 new, -1 removed)."""

    user_id: I64
    account_id: I64
    submit_epoch: I64
    start_epoch: F64
    end_epoch: F64
    cpus: F64
    gpus: F64
    energy_it_j: F64
    energy_facility_j: F64
    co2e_g: F64
    cost: F64
    energy_invalid: Bools  # jobcomp_energy_status == "invalid"
    unreconciled: Bools  # reconcile_status in UNRECONCILED
    sign: F64


def floats(values: Sequence[Any]) -> F64:
    """A column of numbers or None as float64 (None -> NaN)."""
    return np.array(values, dtype=np.float64).reshape(-1)


def inputs_of(jobs: Sequence[RollupInput], signs: Sequence[float] | float = 1.0) -> RollupInputs:
    """``RollupInputs`` of row-wise inputs (stored rows, or callers outside the sink)."""
    cols = list(zip(*jobs, strict=True)) if jobs else [()] * len(ROLLUP_INPUT_COLUMNS)
    n = len(jobs)
    return RollupInputs(
        user_id=np.array(cols[0], dtype=np.int64).reshape(n),
        account_id=np.array(cols[1], dtype=np.int64).reshape(n),
        submit_epoch=np.array(cols[2], dtype=np.int64).reshape(n),
        start_epoch=floats(cols[3]),
        end_epoch=floats(cols[4]),
        cpus=floats(cols[5]),
        gpus=floats(cols[6]),
        energy_it_j=floats(cols[7]),
        energy_facility_j=floats(cols[8]),
        co2e_g=floats(cols[9]),
        cost=floats(cols[10]),
        energy_invalid=np.array([s == "invalid" for s in cols[11]], dtype=bool).reshape(n),
        unreconciled=np.array([s in UNRECONCILED for s in cols[12]], dtype=bool).reshape(n),
        sign=np.broadcast_to(np.asarray(signs, dtype=np.float64), (n,)).copy(),
    )


def concat(parts: Sequence[RollupInputs]) -> RollupInputs:
    """One ``RollupInputs`` of several (in order)."""
    return RollupInputs(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


@dataclass(frozen=True, slots=True)
class RollupRows:
    """The delta of one roll-up table: rows sorted by (dimension id, period), none all zero.
    ``day`` is the period's first day as days since 1970-01-01; ``values`` has one column
    per ``MEASURES`` (counts as exact float sums of +-1)."""

    dim: I64
    day: I64
    values: F64

    def __len__(self) -> int:
        return len(self.dim)


#: table -> its rows
RollupArrays = dict[str, RollupRows]

_KEY_SHIFT: Final = 1 << 24  # periods: +-8M days or months around 1970
_KEY_OFFSET: Final = 1 << 23


def contributions(jobs: RollupInputs) -> RollupArrays:
    """The summed, signed contributions of ``jobs`` to every roll-up table.

    Counts go to the period of the job's anchor; runtime, core- and GPU-hours go to each
    period by the seconds of the run there, energy, CO2e and cost by the run's share
    (``warehouse.apportion.split``); missing values count as 0.
    """
    n = len(jobs.sign)
    sign = jobs.sign
    start, end = jobs.start_epoch, jobs.end_epoch
    has_start, has_end = ~np.isnan(start), ~np.isnan(end)
    ran = has_start & has_end & (np.where(has_end, end, 0) > np.where(has_start, start, 0))
    start_i = np.where(has_start, start, 0).astype(np.int64)
    end_i = np.where(has_end, end, 0).astype(np.int64)
    anchor = np.where(has_end, end_i, np.where(has_start, start_i, jobs.submit_epoch))
    has_energy = ~np.isnan(jobs.energy_it_j)
    counts = np.empty((n, _N_COUNTS))
    counts[:, 0] = sign
    counts[:, 1] = sign * has_energy
    counts[:, 2] = sign * (~has_energy & ~jobs.energy_invalid)
    counts[:, 3] = sign * (~has_energy & jobs.energy_invalid)
    counts[:, 4] = sign * ~np.isnan(jobs.co2e_g)
    counts[:, 5] = sign * jobs.unreconciled
    cpus = np.nan_to_num(jobs.cpus)
    per_job = (
        cpus,
        np.where(has_energy, cpus, 0.0),
        np.nan_to_num(jobs.gpus),
        np.nan_to_num(jobs.energy_it_j),
        np.nan_to_num(jobs.energy_facility_j),
        np.nan_to_num(jobs.co2e_g),
        np.nan_to_num(jobs.cost),
    )
    out: RollupArrays = {}
    cut: dict[str, tuple[I64, I64, F64]] = {}
    for table, (dim_name, unit) in _TABLE_KEYS.items():
        if unit not in cut:
            pieces = split(start_i, end_i, ran, anchor, unit)
            job = pieces.job
            s = sign[job]
            seconds = pieces.seconds.astype(np.float64)
            share = s * pieces.share
            sums = np.empty((len(job), _N - _N_COUNTS))
            sums[:, 0] = s * seconds
            for i, hourly in enumerate(per_job[:3], start=1):
                sums[:, i] = s * hourly[job] * seconds / 3600.0
            for i, total in enumerate(per_job[3:], start=4):
                sums[:, i] = share * total[job]
            cut[unit] = (job, pieces.period, sums)
        job, period, sums = cut[unit]
        dim = jobs.user_id if dim_name == "user" else jobs.account_id
        out[table] = _grouped(
            np.concatenate([dim, dim[job]]),
            np.concatenate([period_of(anchor, unit), period]),
            counts,
            sums,
            unit,
        )
    return out


def _grouped(dim: I64, period: I64, counts: F64, sums: F64, unit: str) -> RollupRows:
    """Sum the count rows (first) and piece rows per (dim, period); drop all-zero rows."""
    n_counts = len(counts)
    key = dim * _KEY_SHIFT + (period + _KEY_OFFSET)
    keys, group = np.unique(key, return_inverse=True)
    m = len(keys)
    values = np.zeros((m, _N))
    head, tail = group[:n_counts], group[n_counts:]
    for i in range(_N_COUNTS):
        values[:, i] = np.bincount(head, weights=counts[:, i], minlength=m)
    for i in range(_N - _N_COUNTS):
        values[:, _N_COUNTS + i] = np.bincount(tail, weights=sums[:, i], minlength=m)
    live = np.any(values != 0.0, axis=1)
    keys, values = keys[live], values[live]
    periods = keys % _KEY_SHIFT - _KEY_OFFSET
    return RollupRows(keys // _KEY_SHIFT, period_day(periods, unit), values)


def empty_delta() -> RollupDelta:
    """A delta that changes nothing."""
    return {table: {} for table in ROLLUP_TABLES}


def as_delta(arrays: RollupArrays) -> RollupDelta:
    """The dict form of summed contributions (``{table: {(dim id, date): values}}``)."""
    out = empty_delta()
    for table, rows in arrays.items():
        target = out[table]
        for dim, day, values in zip(
            rows.dim.tolist(), rows.day.tolist(), rows.values.tolist(), strict=True
        ):
            target[(dim, day_date(day))] = values
    return out


def as_arrays(delta: Mapping[str, Mapping[tuple[int, date], Sequence[float]]]) -> RollupArrays:
    """The array form of a dict delta (sorted by key, all-zero rows dropped)."""
    out: RollupArrays = {}
    for table in ROLLUP_TABLES:
        rows = sorted((k, v) for k, v in delta.get(table, {}).items() if any(x != 0.0 for x in v))
        out[table] = RollupRows(
            np.array([k[0] for k, _ in rows], dtype=np.int64),
            np.array([k[1].toordinal() - _EPOCH_ORDINAL for k, _ in rows], dtype=np.int64),
            np.array([list(v) for _, v in rows], dtype=np.float64).reshape(len(rows), _N),
        )
    return out


_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def add_contributions(
    delta: RollupDelta, jobs: Sequence[RollupInput], signs: Sequence[float] | float = 1.0
) -> None:
    """Add the signed contributions of ``jobs`` to ``delta`` (one vectorized pass)."""
    if jobs:
        merge(delta, as_delta(contributions(inputs_of(jobs, signs))))


def add_contribution(delta: RollupDelta, job: RollupInput, sign: float = 1.0) -> None:
    """Add ``sign`` x one job's contribution to every roll-up into ``delta``."""
    add_contributions(delta, [job], sign)


def merge(into: RollupDelta, other: RollupDelta) -> None:
    """Add ``other`` into ``into``."""
    for table, rows in other.items():
        target = into[table]
        for key, values in rows.items():
            mine = target.get(key)
            if mine is None:
                target[key] = list(values)
            else:
                for i, v in enumerate(values):
                    mine[i] += v


def nonzero(delta: RollupDelta) -> RollupDelta:
    """The delta without rows that cancel out exactly (a no-op correction)."""
    return {
        table: {k: v for k, v in rows.items() if any(x != 0.0 for x in v)}
        for table, rows in delta.items()
    }


@dataclass(frozen=True, slots=True)
class Stored:
    """What the sink reads back about a fact already in the warehouse."""

    id: int
    content_hash: str
    precedence: int
    rollup: RollupInput

"""Pure: how one job's numbers are split across UTC days and months (the roll-up rule).

Rule: runtime-proportional measures (runtime, core-hours, energy, CO2e, cost) are split by
the share of the run ``[start, end)`` that falls in each period; a job with no run (never
started, or ``end == start``) puts everything in the period of its *anchor* (end, else
start, else submit). Counts of jobs go to the anchor's period. Hand-computed example: a job
from 22:00 to 02:00 puts half of each measure in each day, and counts once, in the second.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

DAY_S: Final = 86_400
_EPOCH_DATE: Final = date(1970, 1, 1)


def day_of(epoch: int) -> date:
    """The UTC day of an epoch second."""
    return _day(epoch // DAY_S)


def month_of(epoch: int) -> date:
    """The first day of the UTC month of an epoch second."""
    return _month(epoch // DAY_S)


# Memoized by day number: date arithmetic costs microseconds, and a batch of jobs touches
# few distinct days (the sink's roll-up deltas call these for every job).
@lru_cache(maxsize=1 << 16)
def _day(days: int) -> date:
    return _EPOCH_DATE + timedelta(days=days)


@lru_cache(maxsize=1 << 16)
def _month(days: int) -> date:
    return _day(days).replace(day=1)


def day_date(days: int) -> date:
    """The date of a day number (days since 1970-01-01)."""
    return _day(days)


def anchor_epoch(start_epoch: int | None, end_epoch: int | None, submit_epoch: int) -> int:
    """The instant a job is counted at: its end, else its start, else its submission."""
    if end_epoch is not None:
        return end_epoch
    return start_epoch if start_epoch is not None else submit_epoch


#: Period units of ``split``.
DAY: Final = "day"
MONTH: Final = "month"


def period_of(epochs: npt.NDArray[np.int64], unit: str) -> npt.NDArray[np.int64]:
    """The period index of each epoch second: days since 1970-01-01, or months since
    1970-01 (``unit`` is ``DAY`` or ``MONTH``)."""
    days = epochs // DAY_S  # floor, as for negative epochs in Python
    if unit == DAY:
        return days
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def period_start(periods: npt.NDArray[np.int64], unit: str) -> npt.NDArray[np.int64]:
    """The epoch second at which each period starts."""
    if unit == DAY:
        return periods * DAY_S
    return periods.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) * DAY_S


def period_day(periods: npt.NDArray[np.int64], unit: str) -> npt.NDArray[np.int64]:
    """The day number (days since 1970-01-01) of each period's first day."""
    return period_start(periods, unit) // DAY_S


class Pieces(NamedTuple):
    """A batch of runs cut at period boundaries: one element per (job, period touched)."""

    job: npt.NDArray[np.int64]  # index of the job in the batch
    period: npt.NDArray[np.int64]  # period index (``period_of``)
    seconds: npt.NDArray[np.int64]  # seconds of the run in that period
    share: npt.NDArray[np.float64]  # share of the run in that period


def split(
    start: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    ran: npt.NDArray[np.bool_],
    anchor: npt.NDArray[np.int64],
    unit: str,
) -> Pieces:
    """The rule for a whole batch at once: every period each run ``[start, end)`` touches,
    with its seconds there and their share of the run; a job that did not run (``ran``
    false: no start or end, or ``end <= start``) gives one piece in its anchor's period,
    0 seconds, share 1.0. ``start``/``end`` are read only where ``ran``."""
    n = len(anchor)
    s = np.where(ran, start, anchor)
    e = np.where(ran, end, anchor + 1)
    first = period_of(s, unit)
    last = period_of(e - 1, unit)
    count = last - first + 1
    job = np.repeat(np.arange(n, dtype=np.int64), count)
    offset = np.arange(len(job), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    period = first[job] + offset
    lo = np.maximum(s[job], period_start(period, unit))
    hi = np.minimum(e[job], period_start(period + 1, unit))
    ran_piece = ran[job]
    seconds = np.where(ran_piece, hi - lo, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ran_piece, seconds / (e - s)[job], 1.0)
    return Pieces(job, period, seconds, share)


def _split_one(
    start_epoch: int | None, end_epoch: int | None, anchor: int, unit: str
) -> list[tuple[int, int, float]]:
    ran = start_epoch is not None and end_epoch is not None and end_epoch > start_epoch
    one = np.array([start_epoch if ran else 0], dtype=np.int64)
    other = np.array([end_epoch if ran else 0], dtype=np.int64)
    pieces = split(one, other, np.array([ran]), np.array([anchor], dtype=np.int64), unit)
    days = period_day(pieces.period, unit).tolist()
    return list(zip(days, pieces.seconds.tolist(), pieces.share.tolist(), strict=True))


def split_days(
    start_epoch: int | None, end_epoch: int | None, anchor: int
) -> list[tuple[date, int, float]]:
    """``(day, seconds of the run in that day, share of the run)`` for every day the run
    touches; a job without a run gives ``[(day of anchor, 0, 1.0)]`` (``split`` for one job)."""
    return [(_day(d), s, f) for d, s, f in _split_one(start_epoch, end_epoch, anchor, DAY)]


def split_months(
    start_epoch: int | None, end_epoch: int | None, anchor: int
) -> list[tuple[date, int, float]]:
    """Like ``split_days`` for UTC calendar months (each keyed by its first day)."""
    return [(_day(d), s, f) for d, s, f in _split_one(start_epoch, end_epoch, anchor, MONTH)]


def utc_midnight(day: date) -> datetime:
    """The aware UTC datetime at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)

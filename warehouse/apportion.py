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
from typing import Final

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


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _epoch_of(day: date) -> int:
    return (day - _EPOCH_DATE).days * DAY_S


def anchor_epoch(start_epoch: int | None, end_epoch: int | None, submit_epoch: int) -> int:
    """The instant a job is counted at: its end, else its start, else its submission."""
    if end_epoch is not None:
        return end_epoch
    return start_epoch if start_epoch is not None else submit_epoch


def split_days(
    start_epoch: int | None, end_epoch: int | None, anchor: int
) -> list[tuple[date, int, float]]:
    """``(day, seconds of the run in that day, share of the run)`` for every day the run
    touches; a job without a run gives ``[(day of anchor, 0, 1.0)]``."""
    if start_epoch is None or end_epoch is None or end_epoch <= start_epoch:
        return [(day_of(anchor), 0, 1.0)]
    duration = end_epoch - start_epoch
    out: list[tuple[date, int, float]] = []
    t = start_epoch
    while t < end_epoch:
        boundary = (t // DAY_S + 1) * DAY_S
        stop = min(boundary, end_epoch)
        out.append((day_of(t), stop - t, (stop - t) / duration))
        t = stop
    return out


def split_months(
    start_epoch: int | None, end_epoch: int | None, anchor: int
) -> list[tuple[date, int, float]]:
    """Like ``split_days`` for UTC calendar months (each keyed by its first day)."""
    if start_epoch is None or end_epoch is None or end_epoch <= start_epoch:
        return [(month_of(anchor), 0, 1.0)]
    duration = end_epoch - start_epoch
    out: list[tuple[date, int, float]] = []
    t = start_epoch
    while t < end_epoch:
        first = month_of(t)
        stop = min(_epoch_of(_next_month(first)), end_epoch)
        out.append((first, stop - t, (stop - t) / duration))
        t = stop
    return out


def utc_midnight(day: date) -> datetime:
    """The aware UTC datetime at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)

"""The apportioning rule, by hand-computed cases."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import numpy as np
import pytest

from warehouse.apportion import (
    DAY,
    MONTH,
    anchor_epoch,
    period_day,
    split,
    split_days,
    split_months,
)
from warehouse.models import MEASURES
from warehouse.sink.delta import (
    RollupInput,
    add_contribution,
    as_delta,
    contributions,
    empty_delta,
    inputs_of,
    nonzero,
)


def _e(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


def test_job_over_midnight_splits_in_half() -> None:
    start, end = _e(2024, 3, 1, 22), _e(2024, 3, 2, 2)
    assert split_days(start, end, end) == [
        (date(2024, 3, 1), 7200, 0.5),
        (date(2024, 3, 2), 7200, 0.5),
    ]


def test_job_over_three_days() -> None:
    # 12:00 day 1 -> 06:00 day 3: 12 h + 24 h + 6 h = 42 h.
    start, end = _e(2024, 3, 1, 12), _e(2024, 3, 3, 6)
    parts = split_days(start, end, end)
    assert [(d, s) for d, s, _ in parts] == [
        (date(2024, 3, 1), 12 * 3600),
        (date(2024, 3, 2), 24 * 3600),
        (date(2024, 3, 3), 6 * 3600),
    ]
    assert [share for *_, share in parts] == pytest.approx([12 / 42, 24 / 42, 6 / 42])


def test_job_ending_at_midnight_stays_in_its_day() -> None:
    start, end = _e(2024, 3, 1, 20), _e(2024, 3, 2, 0)
    assert split_days(start, end, end) == [(date(2024, 3, 1), 4 * 3600, 1.0)]


def test_month_boundary_and_leap_day() -> None:
    start, end = _e(2024, 1, 31, 18), _e(2024, 2, 1, 6)
    assert split_months(start, end, end) == [
        (date(2024, 1, 1), 6 * 3600, 0.5),
        (date(2024, 2, 1), 6 * 3600, 0.5),
    ]
    # 29 Feb 2024 exists: a job from 28 Feb 12:00 to 1 Mar 12:00 is 48 h, 36 h in February.
    start, end = _e(2024, 2, 28, 12), _e(2024, 3, 1, 12)
    assert split_months(start, end, end) == [
        (date(2024, 2, 1), 36 * 3600, 0.75),
        (date(2024, 3, 1), 12 * 3600, 0.25),
    ]


def test_job_that_never_ran_goes_to_its_anchor() -> None:
    submit, end = _e(2024, 3, 1, 23), _e(2024, 3, 2, 1)
    anchor = anchor_epoch(None, end, submit)
    assert anchor == end
    assert split_days(None, end, anchor) == [(date(2024, 3, 2), 0, 1.0)]
    assert anchor_epoch(None, None, submit) == submit


def test_contribution_of_a_midnight_job_by_hand() -> None:
    # 22:00 -> 02:00, 16 CPUs, 4 kWh IT, PUE 1.5, 300 g/kWh (IT) -> 1800 g, cost 0.8.
    start, end = _e(2024, 3, 1, 22), _e(2024, 3, 2, 2)
    job = RollupInput(
        user_id=1, account_id=2, submit_epoch=start - 60, start_epoch=start, end_epoch=end,
        cpus=16, gpus=None, energy_it_j=14_400_000, energy_facility_j=21_600_000.0,
        co2e_g=1800.0, cost=0.8, jobcomp_energy_status="measured", reconcile_status="match",
    )  # fmt: skip
    delta = empty_delta()
    add_contribution(delta, job)
    day1 = dict(zip(MEASURES, delta["rollup_user_day"][(1, date(2024, 3, 1))], strict=True))
    day2 = dict(zip(MEASURES, delta["rollup_account_day"][(2, date(2024, 3, 2))], strict=True))
    for day in (day1, day2):
        assert day["energy_it_j"] == pytest.approx(7_200_000)  # 2 kWh
        assert day["energy_facility_j"] == pytest.approx(10_800_000)
        assert day["co2e_g"] == pytest.approx(900.0)
        assert day["cost"] == pytest.approx(0.4)
        assert day["core_hours"] == pytest.approx(32.0)  # 16 CPUs x 2 h
        assert day["runtime_s"] == 7200
    assert (day1["jobs"], day2["jobs"]) == (0, 1)  # counted on the day it ended
    assert day2["jobs_with_energy"] == 1 and day2["jobs_unreconciled"] == 0
    month = delta["rollup_account_month"][(2, date(2024, 3, 1))]
    assert dict(zip(MEASURES, month, strict=True))["co2e_g"] == pytest.approx(1800.0)


def test_contribution_removed_by_negative_sign() -> None:
    start, end = _e(2024, 3, 1, 22), _e(2024, 3, 2, 2)
    job = RollupInput(
        1, 2, start, start, end, 4, 1, None, None, None, None, "invalid", "not_checked"
    )
    delta = empty_delta()
    add_contribution(delta, job)
    add_contribution(delta, job, -1.0)
    assert all(v == 0 for rows in delta.values() for vals in rows.values() for v in vals)
    add_contribution(delta, job)
    row = dict(zip(MEASURES, delta["rollup_user_day"][(1, date(2024, 3, 2))], strict=True))
    assert row["jobs_invalid_energy"] == 1 and row["jobs_unreconciled"] == 1
    assert row["gpu_hours"] == pytest.approx(2.0)


def _reference_split(start: int, end: int, unit: str) -> list[tuple[int, int, float]]:
    """The rule restated as a plain loop over calendar periods (first day number,
    seconds, share), for runs with ``start < end``."""
    out = []
    t = start
    while t < end:
        day = datetime.fromtimestamp(t, UTC).date()
        first = day if unit == DAY else day.replace(day=1)
        if unit == DAY:
            nxt = first.toordinal() + 1
        else:
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1).toordinal()
        boundary = (nxt - date(1970, 1, 1).toordinal()) * 86_400
        stop = min(boundary, end)
        out.append(((first - date(1970, 1, 1)).days, stop - t, (stop - t) / (end - start)))
        t = stop
    return out


def test_vectorized_split_equals_the_loop_on_random_runs() -> None:
    rng = random.Random(8)
    runs = []
    for _ in range(400):
        start = rng.randrange(_e(1999, 12, 1), _e(2031, 3, 1))
        length = rng.choice([0, 1, 59, 3600, 86_399, 86_400, 86_401, 40 * 86_400, 400 * 86_400])
        runs.append((start, start + length + rng.randrange(0, 2)))
    start = np.array([s for s, _ in runs], dtype=np.int64)
    end = np.array([e for _, e in runs], dtype=np.int64)
    ran = end > start
    for unit in (DAY, MONTH):
        pieces = split(start, end, ran, end, unit)
        days = period_day(pieces.period, unit)
        got: dict[int, list[tuple[int, int, float]]] = {}
        for job, d, s, f in zip(pieces.job, days, pieces.seconds, pieces.share, strict=True):
            got.setdefault(int(job), []).append((int(d), int(s), float(f)))
        for i, (s, e) in enumerate(runs):
            if e > s:
                assert got[i] == _reference_split(s, e, unit)
            else:  # no run: one piece in the anchor's (the end's) period
                anchor_day = (e // 86_400) if unit == DAY else None
                [(d, secs, share)] = got[i]
                assert (secs, share) == (0, 1.0)
                if anchor_day is not None:
                    assert d == anchor_day


def test_batch_contributions_equal_the_sum_of_single_jobs() -> None:
    """``contributions`` over many signed jobs at once equals adding them one at a time
    (relative 1e-12), and a job added and removed leaves nothing behind."""
    rng = random.Random(9)
    jobs, signs = [], []
    for i in range(300):
        start = rng.randrange(_e(2024, 1, 1), _e(2024, 12, 1))
        end = start + rng.choice([0, 600, 20 * 3600, 3 * 86_400, 45 * 86_400])
        ran = rng.random() < 0.9
        jobs.append(
            RollupInput(
                1 + i % 7, 1 + i % 3, start - 100, start if ran else None,
                end if rng.random() < 0.95 else None, rng.choice([None, 1, 64]),
                rng.choice([None, 0, 4]), rng.choice([None, rng.randrange(10**9)]),
                rng.choice([None, rng.random() * 1e9]), rng.choice([None, rng.random() * 1e3]),
                rng.choice([None, rng.random()]), rng.choice(["measured", "invalid", "missing"]),
                rng.choice(["match", "not_checked", "unreconciled"]),
            )
        )  # fmt: skip
        signs.append(rng.choice([1.0, -1.0]))
    at_once = as_delta(contributions(inputs_of(jobs, signs)))
    one_by_one = empty_delta()
    for job, sign in zip(jobs, signs, strict=True):
        add_contribution(one_by_one, job, sign)
    one_by_one = nonzero(one_by_one)
    for table in one_by_one:
        assert at_once[table].keys() == one_by_one[table].keys()
        for key, values in one_by_one[table].items():
            assert at_once[table][key] == pytest.approx(values, rel=1e-12, abs=1e-9)
    both = contributions(inputs_of(jobs + jobs, [1.0] * len(jobs) + [-1.0] * len(jobs)))
    assert all(float(np.abs(rows.values).max(initial=0.0)) < 1e-6 for rows in both.values())

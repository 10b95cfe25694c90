"""The apportioning rule, by hand-computed cases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from warehouse.apportion import anchor_epoch, split_days, split_months
from warehouse.models import MEASURES
from warehouse.sink.delta import RollupInput, add_contribution, empty_delta


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

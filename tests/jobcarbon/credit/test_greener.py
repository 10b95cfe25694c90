"""Greener start: hand-computed cases over a small hourly forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobcarbon.credit.greener import ForecastPoint, greener_start, mean_intensity

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)


def hourly(*values: float) -> list[ForecastPoint]:
    return [ForecastPoint(T0 + i * H, T0 + (i + 1) * H, v) for i, v in enumerate(values)]


def test_one_hour_job_waits_for_the_cheapest_hour() -> None:
    # 1 kWh facility energy: at 400 g/kWh now, 100 g/kWh from 01:00.
    best = greener_start(
        hourly(400, 100, 100, 300),
        now=T0,
        runtime_s=3600,
        energy_facility_j=3.6e6,
        max_delay_s=3 * 3600,
    )
    assert best is not None
    assert best.begin_at == T0 + H
    assert best.sbatch_begin == "now+3600"
    assert best.co2e_g == pytest.approx(100.0)
    assert best.co2e_now_g == pytest.approx(400.0)
    assert best.co2e_saved_g == pytest.approx(300.0)


def test_two_hour_job_from_half_past() -> None:
    # Now 00:30: 0.5 h at 400 + 1.5 h at 100 -> mean 175; from 01:00: 2 h at 100 -> 100.
    # 2 kWh facility energy: 350 g now, 200 g at 01:00.
    best = greener_start(
        hourly(400, 100, 100, 300),
        now=T0 + H / 2,
        runtime_s=7200,
        energy_facility_j=7.2e6,
        max_delay_s=7200,
    )
    assert best is not None
    assert best.delay_s == 1800
    assert best.co2e_now_g == pytest.approx(350.0)
    assert best.co2e_g == pytest.approx(200.0)
    assert best.intensity_g_per_kwh == pytest.approx(100.0)


def test_delay_limit_is_respected() -> None:
    # The cheap hour is 3 h away but only 1 h of delay is allowed: 00:00-02:00 window,
    # starts 00:00..01:00 -> mean(500, 300) = 400 at 00:00, mean(300, 350)=325 at 01:00.
    best = greener_start(
        hourly(500, 300, 350, 10),
        now=T0,
        runtime_s=7200,
        energy_facility_j=3.6e6,
        max_delay_s=3600,
    )
    assert best is not None
    assert best.begin_at == T0 + H
    assert best.co2e_g == pytest.approx(325.0)


def test_now_is_best_gives_no_begin() -> None:
    best = greener_start(
        hourly(100, 200, 300),
        now=T0,
        runtime_s=3600,
        energy_facility_j=3.6e6,
        max_delay_s=7200,
    )
    assert best is not None
    assert best.sbatch_begin is None
    assert best.co2e_saved_g == 0.0


def test_ties_go_to_the_earliest_start() -> None:
    best = greener_start(
        hourly(300, 100, 100, 100),
        now=T0,
        runtime_s=3600,
        energy_facility_j=3.6e6,
        max_delay_s=3 * 3600,
    )
    assert best is not None and best.begin_at == T0 + H


def test_candidate_runs_must_be_covered() -> None:
    # Runs of 2 h: starting at 02:00 would leave the forecast (ends 03:00), so 01:00 wins
    # with mean(100, 250) although hour 02 alone is the cheapest.
    best = greener_start(
        hourly(400, 100, 250),
        now=T0,
        runtime_s=7200,
        energy_facility_j=3.6e6,
        max_delay_s=10 * 3600,
    )
    assert best is not None
    assert best.begin_at == T0 + H
    assert best.co2e_g == pytest.approx(175.0)


def test_uncovered_now_returns_none() -> None:
    assert (
        greener_start(hourly(100), now=T0, runtime_s=7200, energy_facility_j=1.0, max_delay_s=3600)
        is None
    )
    assert greener_start([], now=T0, runtime_s=60, energy_facility_j=1.0, max_delay_s=60) is None


def test_overlapping_forecast_is_rejected() -> None:
    points = [ForecastPoint(T0, T0 + 2 * H, 100), ForecastPoint(T0 + H, T0 + 3 * H, 50)]
    with pytest.raises(ValueError, match="overlap"):
        greener_start(points, now=T0, runtime_s=60, energy_facility_j=1.0, max_delay_s=60)


def test_mean_intensity_reports_coverage() -> None:
    mean, covered = mean_intensity(hourly(100, 300), T0 + H / 2, 4 * 3600)
    # 0.5 h at 100 + 1 h at 300 = 350 / 1.5 h; 1.5 h of 4 h covered.
    assert mean == pytest.approx(350 / 1.5)
    assert covered == pytest.approx(1.5 / 4)

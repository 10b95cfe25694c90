"""The whole check, hand-computed: prediction x PUE x intensity, policy, greener start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobcarbon.credit.check import Usage, co2e_g, run_check
from jobcarbon.credit.greener import ForecastPoint
from jobcarbon.credit.policy import parse_policy
from jobcarbon.credit.predict import JobRequest, PastJob

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
POLICY = parse_policy(
    "max_delay_hours = 6\n"
    "[accounts.proj]\nallocation_kg = 10\nperiod = 'month'\nmode = 'deny'\n"
    "[[equivalence]]\nname='train_km'\nlabel='km by train'\nunit='km'\n"
    "g_co2e_per_unit=50\nsource='test factor'\n"
)
REQ = JobRequest("alice", "proj", "cpu", 1, 128, 0, 7200, "lmp")
# Three past runs at 500 W per node for half their limit: 500 W x 3600 s = 1.8 MJ = 0.5 kWh.
HISTORY = [PastJob("alice", "proj", "cpu", "lmp", 1, 128, 7200, 3600, 1.8e6)] * 3
USAGE = Usage(
    past_co2e_g=1000.0,
    past_energy_facility_j=3.6e6 * 4,
    running_co2e_g=200.0,
    period_used_g=9_700.0,
    previous_period_used_g=None,
)


def test_co2e_formula() -> None:
    assert co2e_g(3.6e6, 1.5, 200.0) == pytest.approx(300.0)  # 1 kWh IT x 1.5 x 200 g


def test_check_with_fallback_intensity() -> None:
    r = run_check(
        REQ,
        USAGE,
        HISTORY,
        POLICY,
        now=NOW,
        pue=1.2,
        fallback_intensity_g_per_kwh=400.0,
        fallback_source="annual",
    )
    # 0.5 kWh IT x 1.2 PUE x 400 g/kWh = 240 g
    assert r.predicted_co2e_g == pytest.approx(240.0)
    assert r.intensity_source == "annual" and r.greener is None
    assert r.total_co2e_g == pytest.approx(1000 + 200 + 240)
    assert r.average_rate_g_per_kwh == pytest.approx(250.0)  # 1000 g over 4 kWh
    assert r.budget_kg == 10 and r.used_kg == pytest.approx(9.7)
    assert r.available_kg == pytest.approx(0.3)
    assert r.decision == "warn"  # 9.94 kg of 10 >= 80 %, not above 100 %
    assert r.equivalents == {"train_km": pytest.approx(240 / 50)}


def test_check_denies_over_budget() -> None:
    usage = Usage(0, 0, 0, 9_900.0, None)
    r = run_check(
        REQ,
        usage,
        HISTORY,
        POLICY,
        now=NOW,
        pue=1.2,
        fallback_intensity_g_per_kwh=400.0,
        fallback_source="annual",
    )
    assert r.decision == "deny"  # 9.9 + 0.24 kg > 10 kg


def test_check_prices_the_forecast_and_finds_a_greener_start() -> None:
    forecast = [
        ForecastPoint(NOW + timedelta(hours=i), NOW + timedelta(hours=i + 1), v)
        for i, v in enumerate((300, 300, 100, 100, 100, 100, 100, 100, 100, 100))
    ]
    r = run_check(
        REQ,
        USAGE,
        HISTORY,
        POLICY,
        now=NOW,
        pue=1.2,
        fallback_intensity_g_per_kwh=400.0,
        fallback_source="annual",
        forecast=forecast,
        forecast_source="test",
    )
    # runtime 3600 s at 300 g/kWh: 0.6 kWh facility x 300 = 180 g; at 02:00: 60 g.
    assert r.intensity_source == "test" and r.intensity_g_per_kwh == pytest.approx(300.0)
    assert r.predicted_co2e_g == pytest.approx(180.0)
    assert r.greener is not None
    assert r.greener.sbatch_begin == "now+7200"
    assert r.greener.co2e_saved_g == pytest.approx(120.0)

"""Forecasts: provider forecast first, persistence (1 day, then 1 week) for the rest."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.enrich.forecast import forecast, forecast_from_lookup, persistence
from consumers.enrich.integrate import integrate
from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint
from consumers.enrich.parsers import electricitymaps, watttime

T0 = datetime(2024, 3, 6, 20, tzinfo=UTC)


def pt(start: datetime, hours: float, value: float) -> IntensityPoint:
    return IntensityPoint(
        provider="electricitymaps",
        zone="DE",
        signal="average",
        basis="lifecycle",
        start_at=start,
        end_at=start + timedelta(hours=hours),
        value_g_per_kwh=value,
    )


def test_provider_forecast_then_persistence(carbon_data: Path, shared_data: Path) -> None:
    # Provider forecast covers 20:00-22:00 on 03-06 (610, 590). The window runs to 23:00:
    # 22:00-23:00 comes from the same hour a day earlier (03-05 22:00 = 599, real history).
    fc = electricitymaps.parse((carbon_data / "em_forecast_DE.json").read_bytes()).strict()
    raw = shared_data / "electricitymaps/aioelectricitymaps_carbon_intensity_history_DE.json"
    history = electricitymaps.parse(raw.read_bytes()).strict()
    result = forecast(fc, history, T0, T0 + timedelta(hours=3))
    assert [(p.start_at.hour, p.value_g_per_kwh) for p in result.points] == [
        (20, 610),
        (21, 590),
        (22, 599),
    ]
    assert result.shares == pytest.approx({"provider": 2 / 3, "persistence-1d": 1 / 3})
    assert all(p.is_estimated for p in result.points)
    # Expected intensity for a job over the window: (610 + 590 + 599) / 3.
    expected = integrate(T0, T0 + timedelta(hours=3), result.points, default_g_per_kwh=475)
    assert expected.intensity_g_per_kwh == pytest.approx((610 + 590 + 599) / 3)


def test_week_persistence_fills_what_the_day_cannot() -> None:
    # No provider forecast; yesterday covers only the first hour, last week both.
    history = [pt(T0 - timedelta(days=1), 1, 100), pt(T0 - timedelta(days=7), 2, 300)]
    result = forecast([], history, T0, T0 + timedelta(hours=2))
    assert [(p.start_at, p.end_at, p.value_g_per_kwh) for p in result.points] == [
        (T0, T0 + timedelta(hours=1), 100),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2), 300),
    ]
    assert result.shares == {"persistence-1d": 0.5, "persistence-7d": 0.5}
    assert result.coverage == 1.0


def test_nothing_known_gives_an_empty_forecast() -> None:
    result = forecast([], [], T0, T0 + timedelta(hours=1))
    assert result.points == () and result.coverage == 0


def test_partial_overlap_is_clipped() -> None:
    # Provider covers 20:30-21:30; yesterday 20:00-22:00 hourly 100, 200.
    history = [pt(T0 - timedelta(days=1), 1, 100), pt(T0 - timedelta(hours=23), 1, 200)]
    provider = [pt(T0 + timedelta(minutes=30), 1, 500)]
    result = forecast(provider, history, T0, T0 + timedelta(hours=2), lags=(timedelta(days=1),))
    assert [
        (p.start_at.minute, p.end_at - p.start_at, p.value_g_per_kwh) for p in result.points
    ] == [
        (0, timedelta(minutes=30), 100),
        (30, timedelta(hours=1), 500),
        (30, timedelta(minutes=30), 200),
    ]


def test_watttime_marginal_forecast_from_lookup(shared_data: Path) -> None:
    text = (shared_data / "watttime/watttime_moer_forecast_2024-05-28.csv").read_text()
    lookup = InMemoryLookup()
    lookup.add(watttime.parse_csv(text, "CAISO_NORTH").strict())
    start = datetime(2024, 5, 28, 15, tzinfo=UTC)
    result = forecast_from_lookup(
        lookup, "watttime", "CAISO_NORTH", "marginal", start, start + timedelta(hours=1)
    )
    assert len(result.points) == 12 and result.shares == {"provider": 1.0}
    assert persistence([], start, start, timedelta(days=1)) == []

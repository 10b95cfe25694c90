"""Forecast sources of the API: a JSON file, or the warehouse's intensity series (real
PostgreSQL) with the carbon helper's provider-then-persistence forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.enrich.model import IntensityPoint
from jobcarbon.api.factory import ForecastFile, WarehouseForecast, parse_forecast
from jobcarbon.settings import Settings
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.series_store import write_intensity

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_forecast_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(
        '[{"start_at": "2026-11-21T11:00:00+00:00", "end_at": "2026-11-21T12:00:00+00:00",'
        ' "intensity_g_per_kwh": 100},'
        ' {"start_at": "2026-11-21T12:00:00+00:00", "end_at": "2026-11-21T13:00:00+00:00",'
        ' "intensity_g_per_kwh": 250.5}]'
    )
    points = ForecastFile(str(path))(NOW)
    assert [p.intensity_g_per_kwh for p in points] == [250.5]  # past points dropped
    assert ForecastFile(str(tmp_path / "missing.json"))(NOW) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"start_at": "x", "end_at": "y", "intensity_g_per_kwh": 1}]', r"forecast\[0\]"),
        ('[{"start_at": "2026-11-21T11:00:00", "end_at": "2026-11-21T12:00:00",'
         ' "intensity_g_per_kwh": 1}]', "UTC offset"),
        ('[{"end_at": "2026-11-21T12:00:00+00:00"}]', r"forecast\[0\]"),
    ],
)  # fmt: skip
def test_bad_forecast_file(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_forecast(text)


@pytest.mark.postgres
def test_warehouse_forecast_persistence(pg_database: str) -> None:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    # Yesterday's hourly actuals only: tomorrow's forecast is 1-day persistence of them.
    points = [
        IntensityPoint(provider="electricitymaps", zone="DE", signal="average", basis=None,
                       start_at=NOW - 24 * H + i * H, end_at=NOW - 23 * H + i * H,
                       value_g_per_kwh=100.0 + i)
        for i in range(24)
    ]  # fmt: skip
    with engine.begin() as conn:
        write_intensity(conn, points, NOW - 23 * H)
    settings = Settings(
        carbon={"clusters": {"c": {"zone": "DE", "site": "default"}}}, credit={"cluster": "c"}
    )
    forecast = WarehouseForecast(engine, settings, timedelta(hours=24))
    got = forecast(NOW)
    assert [p.intensity_g_per_kwh for p in got] == [100.0 + i for i in range(24)]
    assert got[0].start_at == NOW and got[-1].end_at == NOW + 24 * H
    assert "electricitymaps:DE" in forecast.source
    engine.dispose()

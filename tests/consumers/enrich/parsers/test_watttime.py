"""WattTime: lbs/MWh -> g/kWh, marginal signal, real forecast CSV."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.watttime import parse_csv, parse_json


def test_historical_json_converts_lbs_per_mwh(carbon_data: Path) -> None:
    points = parse_json((carbon_data / "watttime_historical.json").read_bytes()).strict()
    assert [p.value_g_per_kwh for p in points] == [
        pytest.approx(870 * 0.45359237),
        pytest.approx(860 * 0.45359237),
    ]
    assert points[0].value_g_per_kwh == pytest.approx(394.625362)  # by hand: 870 x 0.45359237
    assert all(p.signal == "marginal" and p.zone == "CAISO_NORTH" for p in points)
    assert points[1].start_at - points[0].start_at == timedelta(minutes=5)
    assert not points[0].is_estimated


def test_real_forecast_csv(shared_data: Path) -> None:
    text = (shared_data / "watttime/watttime_moer_forecast_2024-05-28.csv").read_text()
    points = parse_csv(text, region="CAISO_NORTH").strict()
    assert len(points) == 288
    assert points[0].start_at == datetime(2024, 5, 28, 14, 20, tzinfo=UTC)
    assert points[0].value_g_per_kwh == pytest.approx(479.4 * 0.45359237)
    values = [p.value_g_per_kwh / 0.45359237 for p in points]
    assert min(values) == pytest.approx(121.3) and max(values) == pytest.approx(971.7)
    assert all(p.is_estimated and p.signal == "marginal" for p in points)


def test_aoer_is_average_and_units_are_checked() -> None:
    body = {
        "data": [{"point_time": "2022-07-15T00:00:00+00:00", "value": 100}],
        "meta": {"region": "X", "signal_type": "co2_aoer", "units": "lbs_co2_per_mwh"},
    }
    assert parse_json(body).strict()[0].signal == "average"
    body["meta"]["units"] = "kg_per_mwh"  # type: ignore[index]
    with pytest.raises(SeriesError, match=r"meta\.units"):
        parse_json(body)
    with pytest.raises(SeriesError, match="meta: missing"):
        parse_json(b'{"data": []}')


def test_csv_missing_value_and_truncated_line() -> None:
    parsed = parse_csv(",point_time,value\n0,2024-05-28T14:20:00+00:00,\n", region="R")
    assert parsed.points == () and parsed.rejected[0].where == "line 2.value"
    with pytest.raises(SeriesError, match="truncated"):
        parse_csv(",point_time,value\n0,2024-05-28T14:20:00+00:00\n", region="R")

"""Time-of-use tariffs across a daylight-saving change."""

from datetime import UTC, datetime

import pytest

from consumers.enrich.tariff import TariffError, tariff_price_points
from jobcarbon.settings import TariffSettings


def test_local_hours_follow_the_site_time_zone_across_dst() -> None:
    # Europe/Paris 2025-10-26: 00:00Z = 02:00 CEST, 01:00Z = 02:00 CET (repeated hour),
    # 02:00Z = 03:00 CET. Peak price for local hour 2 only.
    tariff = TariffSettings(
        name="t",
        timezone="Europe/Paris",
        periods=[
            {"start_hour": 2, "end_hour": 3, "price_per_kwh": 0.5},  # type: ignore[list-item]
            {"start_hour": 0, "end_hour": 24, "price_per_kwh": 0.1},  # type: ignore[list-item]
        ],
    )
    points = tariff_price_points(
        tariff, datetime(2025, 10, 26, 0, tzinfo=UTC), datetime(2025, 10, 26, 3, tzinfo=UTC)
    )
    assert [p.value_g_per_kwh for p in points] == [0.5, 0.5, 0.1]


def test_hour_without_price_is_an_error() -> None:
    tariff = TariffSettings(
        name="t", periods=[{"start_hour": 0, "end_hour": 12, "price_per_kwh": 0.1}]
    )  # type: ignore[list-item]
    with pytest.raises(TariffError, match="local hour 12"):
        tariff_price_points(
            tariff, datetime(2025, 1, 1, 11, tzinfo=UTC), datetime(2025, 1, 1, 13, tzinfo=UTC)
        )

"""Electricity Maps v3 parser on the real fixtures and on broken replies."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.electricitymaps import parse

FETCHED = datetime(2024, 3, 7, tzinfo=UTC)


def test_history_de_real_fixture(shared_data: Path) -> None:
    raw = shared_data / "electricitymaps/aioelectricitymaps_carbon_intensity_history_DE.json"
    parsed = parse(raw.read_bytes(), FETCHED)
    points = parsed.strict()
    body = orjson.loads(raw.read_bytes())
    assert len(points) == len(body["history"]) == 24
    first = points[0]
    assert first.zone == "DE" and first.value_g_per_kwh == 599
    assert first.start_at == datetime(2024, 3, 5, 20, tzinfo=UTC)
    assert first.end_at - first.start_at == timedelta(hours=1)
    assert first.basis == "lifecycle" and first.signal == "average"
    assert first.updated_at == datetime(2024, 3, 6, 15, 48, 54, 12000, tzinfo=UTC)
    assert first.fetched_at == FETCHED
    # README: the last two points are estimated (TIME_SLICER_AVERAGE).
    assert [p.is_estimated for p in points[-3:]] == [False, True, True]
    assert points[-1].start_at == datetime(2024, 3, 6, 19, tzinfo=UTC)


def test_latest_and_past_range_real_fixtures(shared_data: Path) -> None:
    latest = parse(
        (
            shared_data
            / "electricitymaps/aioelectricitymaps_latest_carbon_intensity_US-CAR-DUK.json"
        ).read_bytes()
    ).strict()
    assert len(latest) == 1
    assert (latest[0].zone, latest[0].value_g_per_kwh, latest[0].is_estimated) == (
        "US-CAR-DUK",
        216,
        True,
    )
    rng = parse(
        (shared_data / "electricitymaps/if-electricitymaps_past_range_DK-DK2.json").read_bytes()
    ).strict()
    assert [(p.zone, p.value_g_per_kwh) for p in rng] == [("DK-DK2", 161), ("DK-DK2", 167)]
    assert rng[1].start_at == datetime(2024, 3, 18, 3, tzinfo=UTC)


def test_forecast_shape_is_estimated(carbon_data: Path) -> None:
    points = parse((carbon_data / "em_forecast_DE.json").read_bytes()).strict()
    assert [p.value_g_per_kwh for p in points] == [610, 590]
    assert all(p.is_estimated for p in points)


def test_null_value_is_rejected_not_zero() -> None:
    body = {
        "zone": "DE",
        "history": [
            {"zone": "DE", "carbonIntensity": None, "datetime": "2024-03-05T20:00:00.000Z"},
            {"zone": "DE", "carbonIntensity": 600, "datetime": "2024-03-05T21:00:00.000Z"},
        ],
    }
    parsed = parse(body)
    assert [p.value_g_per_kwh for p in parsed.points] == [600]
    assert parsed.rejected[0].where == "history[0].carbonIntensity"
    assert "null" in parsed.rejected[0].reason
    with pytest.raises(SeriesError, match=r"history\[0\]\.carbonIntensity"):
        parsed.strict()


def test_unsorted_history_is_sorted() -> None:
    body = {
        "zone": "DE",
        "history": [
            {"carbonIntensity": 2, "datetime": "2024-03-05T21:00:00Z"},
            {"carbonIntensity": 1, "datetime": "2024-03-05T20:00:00Z"},
        ],
    }
    assert [p.value_g_per_kwh for p in parse(body).points] == [1, 2]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"zone": "DE", "history": [{"carbonIntensity": 5', "malformed JSON"),
        (b"<html>502 Bad Gateway</html>", "malformed JSON"),
        (b'{"zone": "DE"}', "no carbonIntensity"),
        (b'{"history": [{"carbonIntensity": 5, "datetime": "2024-03-05 20:00"}]}', "time zone"),
        (b'{"history": [{"carbonIntensity": 5}]}', r"history\[0\]\.datetime: missing"),
        (b'{"history": {"x": 1}}', "expected an array"),
        (
            b'{"zone":"DE","carbonIntensity":5,"datetime":"2024-03-05T20:00:00Z",'
            b'"emissionFactorType":"\'; DROP TABLE x;--"}',
            "emissionFactorType",
        ),
    ],
)
def test_bad_payloads_name_the_problem(payload: bytes, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        parse(payload)


@pytest.mark.parametrize("value", [-5, "abc", 1e300, float("nan"), True])
def test_bad_values_are_rejected(value: object) -> None:
    body = {"zone": "DE", "carbonIntensity": value, "datetime": "2024-03-05T20:00:00Z"}
    parsed = parse(body)
    assert parsed.points == () and len(parsed.rejected) == 1

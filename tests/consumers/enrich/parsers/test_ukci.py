"""UK Carbon Intensity parser: national and both regional shapes (documented examples)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.ukci import parse


def test_national_prefers_actual_and_falls_back_to_forecast(carbon_data: Path) -> None:
    points = parse((carbon_data / "ukci_national.json").read_bytes()).strict()
    assert [(p.zone, p.value_g_per_kwh, p.is_estimated) for p in points] == [
        ("GB", 263, False),
        ("GB", 270, True),
    ]
    assert points[0].start_at == datetime(2018, 1, 20, 12, tzinfo=UTC)
    assert points[0].end_at == datetime(2018, 1, 20, 12, 30, tzinfo=UTC)
    assert points[0].basis == "direct"


def test_regional_all_regions(carbon_data: Path) -> None:
    points = parse((carbon_data / "ukci_regional_all.json").read_bytes()).strict()
    assert {(p.zone, p.value_g_per_kwh) for p in points} == {("GB-R1", 23), ("GB-R13", 180)}
    assert all(p.is_estimated for p in points)


def test_regional_one_region_object_and_postcode_array(carbon_data: Path) -> None:
    one = parse((carbon_data / "ukci_region_one.json").read_bytes()).strict()
    assert [(p.zone, p.value_g_per_kwh) for p in one] == [("GB-R13", 180), ("GB-R13", 175)]
    postcode = parse((carbon_data / "ukci_postcode.json").read_bytes()).strict()
    assert [(p.zone, p.value_g_per_kwh) for p in postcode] == [("GB-R12", 150)]


def test_null_forecast_and_actual_is_rejected() -> None:
    body = {
        "data": [
            {
                "from": "2018-01-20T12:00Z",
                "to": "2018-01-20T12:30Z",
                "intensity": {"forecast": None, "actual": None},
            }
        ]
    }
    parsed = parse(body)
    assert parsed.points == ()
    assert parsed.rejected[0].where == "data[0].intensity.forecast"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b'{"data":[{"from":"2018-01-20T12:30Z","to":"2018-01-20T12:00Z",'
            b'"intensity":{"forecast":1}}]}',
            "not after",
        ),
        (b'{"error":{"code":"400 Bad Request"}}', r"data: missing"),
        (b'{"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z"}]}', "intensity"),
        (b'{"data":[{"from":"2018-01-20T12:00Z"', "malformed"),
    ],
)
def test_bad_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        parse(payload)

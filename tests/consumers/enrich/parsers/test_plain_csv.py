"""The plain CSV intensity and PUE formats."""

from datetime import UTC, datetime

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.plain_csv import parse_intensity, parse_pue

INTENSITY = """start_at,end_at,zone,intensity_g_per_kwh,signal,basis,is_estimated
2024-01-01T01:00:00Z,2024-01-01T02:00:00Z,SE,30,average,lifecycle,false
2024-01-01T00:00:00+01:00,2024-01-01T01:00:00Z,SE,20,,,true
"""


def test_intensity_csv() -> None:
    points = parse_intensity(INTENSITY, provider="site-meter").strict()
    assert [(p.start_at, p.value_g_per_kwh, p.is_estimated) for p in points] == [
        (datetime(2023, 12, 31, 23, tzinfo=UTC), 20, True),
        (datetime(2024, 1, 1, 1, tzinfo=UTC), 30, False),
    ]
    assert points[0].basis is None and points[1].basis == "lifecycle"
    assert points[0].provider == "site-meter"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start_at,zone\n", r"missing column\(s\) \['end_at'"),
        (INTENSITY + "2024-01-01T03:00:00Z,2024-01-01T02:00:00Z,SE,1,,,\n", "not after"),
        (INTENSITY + "2024-01-01T02:00:00Z,2024-01-01T03:00:00Z,SE,1,hourly,,\n", "signal"),
        (INTENSITY + "2024-01-01T02:00:00Z,2024-01-01T03:00:00Z\n", "truncated"),
        (INTENSITY + "2024-01-01T02:00:00,2024-01-01T03:00:00Z,SE,1,,,\n", "time zone"),
    ],
)
def test_intensity_csv_errors(text: str, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        parse_intensity(text)


def test_intensity_csv_rejects_bad_values() -> None:
    text = INTENSITY + "2024-01-01T02:00:00Z,2024-01-01T03:00:00Z,SE,'; DROP TABLE t;--,,,\n"
    parsed = parse_intensity(text)
    assert len(parsed.points) == 2 and parsed.rejected[0].where == "line 4 intensity_g_per_kwh"


def test_pue_csv_from_power_and_direct() -> None:
    text = (
        "start_at,end_at,site,total_power_w,it_power_w\n"
        "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,dc,1200,1000\n"
        "2024-01-01T01:00:00Z,2024-01-01T02:00:00Z,dc,900,1000\n"
        "2024-01-01T02:00:00Z,2024-01-01T03:00:00Z,dc,900,0\n"
    )
    points, rejected = parse_pue(text)
    assert [p.pue for p in points] == [pytest.approx(1.2)]
    assert "PUE out of range" in rejected[0].reason and "it_power_w" in rejected[1].reason
    points, _ = parse_pue(
        "start_at,end_at,site,pue\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,dc,1.1\n"
    )
    assert points[0].pue == 1.1
    with pytest.raises(SeriesError, match="pue"):
        parse_pue("start_at,end_at,site,x\n")

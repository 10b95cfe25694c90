"""The series model helpers: timestamps, values, sorting and duplicate intervals."""

from datetime import UTC, datetime, timedelta

import pytest

from consumers.enrich.model import (
    IntensityPoint,
    Rejected,
    SeriesError,
    finish,
    intensity_value,
    parse_utc,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def point(hour: int, value: float, zone: str = "Z") -> IntensityPoint:
    return IntensityPoint(
        provider="p",
        zone=zone,
        signal="average",
        basis=None,
        start_at=T0 + timedelta(hours=hour),
        end_at=T0 + timedelta(hours=hour + 1),
        value_g_per_kwh=value,
    )


def test_parse_utc() -> None:
    assert parse_utc("2024-01-01T01:00:00+01:00", "x") == T0
    assert parse_utc("2024-01-01T00:00Z", "x") == T0
    for bad in ("2024-01-01T00:00:00", "yesterday", 5, None, "2024-13-01T00:00Z"):
        with pytest.raises(SeriesError, match=r"^f: "):
            parse_utc(bad, "f")


def test_intensity_value() -> None:
    assert intensity_value("12.5", "x") == 12.5
    assert intensity_value(100, "x", 0.5) == 50
    for bad in (None, "", "ND", -1, float("inf"), 2e5, True, [1], "1e400"):
        out = intensity_value(bad, "f")
        assert isinstance(out, Rejected) and out.where == "f"


def test_finish_sorts_drops_exact_duplicates_and_rejects_conflicts() -> None:
    parsed = finish([point(1, 5), point(0, 3), point(0, 3), point(1, 6), point(0, 9, "Y")], [])
    assert [(p.zone, p.start_at.hour, p.value_g_per_kwh) for p in parsed.points] == [
        ("Y", 0, 9),
        ("Z", 0, 3),
        ("Z", 1, 5),
    ]
    assert (
        len(parsed.rejected) == 1 and "two values for one interval: 5" in parsed.rejected[0].reason
    )
    with pytest.raises(SeriesError, match="two values"):
        parsed.strict()

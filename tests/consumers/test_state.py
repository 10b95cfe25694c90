"""Enrichment state: points from grid.intensity / facility.power merged locally."""

from __future__ import annotations

import random

import orjson
import pytest

from consumers.state import PointError, merge_point, parse_point


def point(start: str, value: float, provider: str = "ukci", **extra: object) -> dict[str, object]:
    return {
        "zone": "GB",
        "provider": provider,
        "signal": "average",
        "start_at": start,
        "value_g_per_kwh": value,
        **extra,
    }


def test_parse_point_names_the_zone() -> None:
    name, doc = parse_point(orjson.dumps(point("2025-01-01T00:00:00Z", 120.0)), "zone")
    assert name == "GB" and doc["value_g_per_kwh"] == 120.0


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b"not json", "JSON"),
        (b"[1]", "not an object"),
        (orjson.dumps({"start_at": "2025-01-01T00:00:00Z"}), "'zone'"),
        (orjson.dumps({"zone": "'; DROP TABLE x;--", "start_at": 5}), "'start_at'"),
    ],
)
def test_bad_points_are_refused_naming_the_field(value: bytes, field: str) -> None:
    with pytest.raises(PointError, match=field):
        parse_point(value, "zone")


def test_a_revised_point_replaces_the_older_one_and_order_is_by_start() -> None:
    series = merge_point([], point("2025-01-01T01:00:00Z", 150.0))
    series = merge_point(series, point("2025-01-01T00:00:00Z", 100.0))
    series = merge_point(series, point("2025-01-01T01:00:00Z", 155.0))  # revision
    series = merge_point(series, point("2025-01-01T01:00:00Z", 90.0, provider="owid"))
    assert [(p["start_at"][11:16], p["value_g_per_kwh"]) for p in series] == [
        ("00:00", 100.0),
        ("01:00", 155.0),
        ("01:00", 90.0),
    ]


def test_old_points_are_dropped_beyond_the_limit() -> None:
    series: list[dict[str, object]] = []
    for hour in range(10):
        series = merge_point(series, point(f"2025-01-01T{hour:02d}:00:00Z", hour), keep=4)
    assert [p["value_g_per_kwh"] for p in series] == [6, 7, 8, 9]


def merged_by_sorting(
    points: list[dict[str, object]], new: dict[str, object], keep: int
) -> list[dict[str, object]]:
    """The rule as first written: drop the same (provider, signal, start), append, sort."""

    def key(p: dict[str, object]) -> tuple[object, object, object]:
        return (str(p.get("provider", "")), str(p.get("signal", "")), p["start_at"])

    merged = [p for p in points if key(p) != key(new)]
    merged.append(new)
    merged.sort(key=lambda p: str(p["start_at"]))
    return merged[-keep:]


def test_merge_equals_drop_append_sort_on_random_messages() -> None:
    rng = random.Random(4)
    series: list[dict[str, object]] = []
    expected: list[dict[str, object]] = []
    for i in range(3000):
        hour = rng.randrange(0, 60) if rng.random() < 0.3 else 40 + i // 50
        at = f"2025-01-{1 + hour // 24:02d}T{hour % 24:02d}:00:00Z"
        provider = rng.choice(("ukci", "owid"))
        new = point(at, i, provider=provider, signal=rng.choice(("average", "marginal")))
        series = merge_point(series, new, keep=200)
        expected = merged_by_sorting(expected, new, keep=200)
        assert series == expected

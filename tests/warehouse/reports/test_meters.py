"""Meter input: power samples and counters to energy, by hand; bad input reported, never lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warehouse.reports.meters import parse_meters, read_meter_table

T0 = datetime(2024, 3, 5, 20, 0, tzinfo=UTC).timestamp()


def table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """A meter table as a CSV file holds it (strings)."""
    cols = ["timestamp", "level", "meter_id", "power_w", "energy_j", "counter_max_j"]
    return pd.DataFrame([{c: str(r.get(c, "")) for c in cols} for r in rows], columns=cols)


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def power_rows(meter: str, watts: list[float], period: int = 300) -> list[dict[str, object]]:
    return [
        {"timestamp": at(i * period), "level": "node", "meter_id": meter, "power_w": w}
        for i, w in enumerate(watts)
    ]


def kinds(meters) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for issue in meters.issues:
        out[issue.kind] = out.get(issue.kind, 0) + issue.count
    return out


def energy(series, a: float, b: float) -> float:  # type: ignore[no-untyped-def]
    return float(series.energy_between(np.array([T0 + a]), np.array([T0 + b]))[0])


def test_power_samples_hold_for_their_period() -> None:
    # 100 W, 200 W, 300 W every 300 s: the last one holds one period -> 900 s in all.
    m = parse_meters(table(power_rows("cn01", [100, 200, 300])))
    s = m.series[("node", "cn01")]
    assert energy(s, 0, 900) == pytest.approx(100 * 300 + 200 * 300 + 300 * 300)
    assert energy(s, 150, 450) == pytest.approx(100 * 150 + 200 * 150)
    assert m.issues == () and m.rows_used == 3


def test_gap_is_reported_and_not_metered() -> None:
    # Samples at 0, 300, 600, then 2400 (a 1800 s silence): 600 + 300 held, 1500 s unknown.
    rows = [
        *power_rows("cn01", [100, 100, 100]),
        {"timestamp": at(2400), "level": "node", "meter_id": "cn01", "power_w": 100},
    ]
    m = parse_meters(table(rows))
    s = m.series[("node", "cn01")]
    assert energy(s, 0, 2700) == pytest.approx(100 * (900 + 300))
    covered = s.covered_between(np.array([T0]), np.array([T0 + 2700]))[0]
    assert covered == pytest.approx(1200)
    (gap,) = [i for i in m.issues if i.kind == "gap"]
    assert gap.subject == "node cn01" and "1500 s not metered" in gap.detail
    assert gap.at == datetime.fromtimestamp(T0 + 600, UTC)
    assert gap.until == datetime.fromtimestamp(T0 + 2400, UTC)


def test_counter_wrap_and_reset_by_hand() -> None:
    # 900 -> 950 (+50) -> 30 wraps at 1000 (+80) -> 100 (+70) -> 5 reset (+5): 205 J.
    values = [900, 950, 30, 100, 5]
    rows = [
        {
            "timestamp": at(i * 300),
            "level": "rack",
            "meter_id": "r1",
            "energy_j": v,
            "counter_max_j": 1000,
        }
        for i, v in enumerate(values)
    ]
    m = parse_meters(table(rows))
    s = m.series[("rack", "r1")]
    assert s.total_energy_j == pytest.approx(205)
    assert energy(s, 300, 600) == pytest.approx(80)
    wrap = next(i for i in m.issues if i.kind == "counter_wrap")
    reset = next(i for i in m.issues if i.kind == "counter_reset")
    assert wrap.energy_j == 80 and wrap.at == datetime.fromtimestamp(T0 + 600, UTC)
    assert reset.energy_j == 5 and reset.at == datetime.fromtimestamp(T0 + 1200, UTC)


def test_counter_drop_without_a_maximum_is_a_reset() -> None:
    rows = [
        {"timestamp": at(i * 60), "level": "node", "meter_id": "cn01", "energy_j": v}
        for i, v in enumerate([5_000, 6_000, 40, 1_040])
    ]
    m = parse_meters(table(rows))
    assert m.series[("node", "cn01")].total_energy_j == pytest.approx(1_000 + 40 + 1_000)
    assert kinds(m) == {"counter_reset": 1}


def test_counter_keeps_energy_across_a_gap() -> None:
    rows = [
        {"timestamp": at(t), "level": "rack", "meter_id": "r1", "energy_j": v}
        for t, v in [(0, 0), (300, 300), (600, 600), (4200, 4200), (4500, 4500)]
    ]
    m = parse_meters(table(rows))
    assert m.series[("rack", "r1")].total_energy_j == pytest.approx(4500)
    (gap,) = [i for i in m.issues if i.kind == "gap"]
    assert "energy kept" in gap.detail and gap.energy_j == pytest.approx(3600)


def test_duplicates_identical_and_conflicting() -> None:
    rows = power_rows("cn01", [100, 200, 300])
    rows.append(dict(rows[1]))  # identical copy
    rows.append({**rows[2], "power_w": 999})  # same instant, another value
    m = parse_meters(table(rows))
    found = {i.kind: i for i in m.issues}
    assert found["duplicate"].count == 1
    assert found["conflicting_duplicate"].count == 1
    assert "999" in found["conflicting_duplicate"].detail
    # The first row of each instant is kept.
    assert energy(m.series[("node", "cn01")], 0, 900) == pytest.approx(180_000)


def test_time_zones_are_normalized_and_reported() -> None:
    # The same instant, 20:00 UTC, three ways: Z, +01:00, and naive local Zurich time.
    rows = [
        {"timestamp": "2024-03-05T20:00:00Z", "level": "node", "meter_id": "a", "power_w": 1},
        {"timestamp": "2024-03-05T21:00:00+01:00", "level": "node", "meter_id": "b", "power_w": 1},
        {"timestamp": "2024-03-05T21:00:00", "level": "node", "meter_id": "c", "power_w": 1},
        {"timestamp": "2024-03-05T20:05:00Z", "level": "node", "meter_id": "a", "power_w": 1},
        {"timestamp": "2024-03-05T21:05:00+01:00", "level": "node", "meter_id": "b", "power_w": 1},
        {"timestamp": "2024-03-05T21:05:00", "level": "node", "meter_id": "c", "power_w": 1},
    ]
    m = parse_meters(table(rows), assume_tz="Europe/Zurich")
    starts = {mid: s.t_s[0] for (_, mid), s in m.series.items()}
    assert starts == {"a": T0, "b": T0, "c": T0}
    details = sorted(i.detail for i in m.issues if i.kind == "timezone")
    assert details == [
        "timestamps with offset +0100 converted to UTC",
        "timestamps without offset read as Europe/Zurich",
    ]
    assert [i.count for i in m.issues if i.kind == "timezone"] == [2, 2]


def test_nonexistent_local_time_is_an_invalid_row_not_a_guess() -> None:
    # 2024-03-31 02:30 does not exist in Zurich (clocks jump from 02:00 to 03:00).
    rows = [
        {"timestamp": "2024-03-31T01:55:00", "level": "node", "meter_id": "a", "power_w": 1},
        {"timestamp": "2024-03-31T02:30:00", "level": "node", "meter_id": "a", "power_w": 1},
        {"timestamp": "2024-03-31T03:05:00", "level": "node", "meter_id": "a", "power_w": 1},
    ]
    m = parse_meters(table(rows), assume_tz="Europe/Zurich")
    (bad,) = [i for i in m.issues if i.kind == "invalid_row"]
    assert "DST" in bad.detail and "02:30" in bad.detail and bad.count == 1
    assert m.rows_used == 2


ADVERSARIAL = [
    ("2024-03-05T20:00:00Z", "node", "cn01", "abc", "", "power_w: not a number"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "-5", "", "power_w: negative"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "1e308", "", "implausibly large"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "inf", "", "power_w: not finite"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "", "", "neither given"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "5", "7", "both given"),
    ("2024-03-05T20:00:00Z", "node", "cn01", "", "-1", "energy_j: negative counter"),
    ("'; DROP TABLE meters; --", "node", "cn01", "5", "", "timestamp: not an ISO 8601"),
    ("2024-03-05T20:00:00Z", "pdu\x1b[31m", "cn01", "5", "", "level: not node"),
    ("2024-03-05T20:00:00Z", "node", "", "5", "", "meter_id: empty"),
]


@pytest.mark.parametrize(("ts", "level", "meter", "power", "energy", "reason"), ADVERSARIAL)
def test_bad_rows_name_field_and_value_and_keep_good_rows(
    ts: str, level: str, meter: str, power: str, energy: str, reason: str
) -> None:
    rows = power_rows("cn02", [100, 100])
    rows.append(
        {"timestamp": ts, "level": level, "meter_id": meter, "power_w": power, "energy_j": energy}
    )
    m = parse_meters(table(rows))
    (bad,) = [i for i in m.issues if i.kind == "invalid_row"]
    assert reason in bad.detail and "row 3" in bad.detail and bad.count == 1
    assert m.rows_used == 2 and m.rows_read == 3
    assert "\x1b" not in bad.detail  # control characters are shown escaped


def test_missing_columns_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="meter_id"):
        parse_meters(pd.DataFrame({"timestamp": [], "level": [], "power_w": []}))


def test_parquet_with_aware_and_naive_timestamps(tmp_path: Path) -> None:
    aware = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([T0, T0 + 300], unit="s", utc=True).tz_convert(
                "America/New_York"
            ),
            "level": "node",
            "meter_id": "cn01",
            "power_w": [100.0, 100.0],
        }
    )
    path = tmp_path / "m.parquet"
    aware.to_parquet(path, engine="pyarrow")
    m = parse_meters(read_meter_table(path))
    assert m.series[("node", "cn01")].t_s[0] == T0
    assert any("America/New_York" in i.detail for i in m.issues if i.kind == "timezone")
    naive = aware.assign(timestamp=aware["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None))
    naive.to_parquet(path, engine="pyarrow")
    m = parse_meters(read_meter_table(path))
    assert m.series[("node", "cn01")].t_s[0] == T0
    assert [i.detail for i in m.issues] == ["timestamps without offset read as UTC"]

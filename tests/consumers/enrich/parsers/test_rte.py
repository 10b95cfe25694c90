"""RTE éCO2mix parser: the real CSV export, API v2.1/v1 JSON, DST and missing values."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.rte import paris_to_utc, parse_csv, parse_json

HEADER = "Périmètre;Nature;Date;Heure;Date - Heure;Consommation (MW);Taux de CO2 (g/kWh)"


def test_real_csv_export_is_sorted_and_converted_to_utc(shared_data: Path) -> None:
    text = (shared_data / "rte/eco2mix-national-tr_excerpt_2025-10-04.csv").read_text("utf-8")
    points = parse_csv(text).strict()
    assert len(points) == 20
    starts = [p.start_at for p in points]
    assert starts == sorted(starts)
    # First data row: 2025-10-04T01:00:00+02:00 -> 2025-10-03T23:00Z, 14 g/kWh.
    assert points[0].start_at == datetime(2025, 10, 3, 23, tzinfo=UTC)
    assert points[0].value_g_per_kwh == 14
    assert points[0].end_at - points[0].start_at == timedelta(minutes=15)
    assert {p.value_g_per_kwh for p in points} <= {14, 15, 16}
    assert all(p.zone == "FR" and p.basis == "direct" for p in points)


def test_v21_json_across_the_autumn_dst_change(carbon_data: Path) -> None:
    parsed = parse_json((carbon_data / "rte_v21.json").read_bytes())
    # 02:45+02:00 = 00:45Z comes before 02:00+01:00 = 01:00Z although the wall clock says later.
    assert [(p.start_at, p.value_g_per_kwh) for p in parsed.points] == [
        (datetime(2025, 10, 26, 0, 45, tzinfo=UTC), 20),
        (datetime(2025, 10, 26, 1, 0, tzinfo=UTC), 24),
    ]
    assert parsed.rejected[0].where == "results[2].taux_co2"
    assert "'ND'" in parsed.rejected[0].reason


def test_v1_json_fields_wrapper_null_is_rejected(carbon_data: Path) -> None:
    parsed = parse_json((carbon_data / "rte_v1.json").read_bytes())
    assert [p.value_g_per_kwh for p in parsed.points] == [14]
    assert parsed.rejected[0].where == "records[1].fields.taux_co2"


def test_csv_nd_and_empty_values_are_rejected() -> None:
    text = "\n".join(
        [
            HEADER,
            "France;Données temps réel;2025-10-04;01:00;2025-10-04T01:00:00+02:00;40322;ND",
            "France;Données temps réel;2025-10-04;01:15;2025-10-04T01:15:00+02:00;40322;",
            "France;Données temps réel;2025-10-04;01:30;2025-10-04T01:30:00+02:00;40322;15",
        ]
    )
    parsed = parse_csv(text)
    assert [p.value_g_per_kwh for p in parsed.points] == [15]
    assert [r.where for r in parsed.rejected] == [
        "line 2 column 'Taux de CO2 (g/kWh)'",
        "line 3 column 'Taux de CO2 (g/kWh)'",
    ]


def test_local_time_only_files_refuse_ambiguous_and_missing_hours() -> None:
    assert paris_to_utc("2025-01-15", "10:00", "x") == datetime(2025, 1, 15, 9, tzinfo=UTC)
    assert paris_to_utc("2025-07-15", "10:00", "x") == datetime(2025, 7, 15, 8, tzinfo=UTC)
    with pytest.raises(SeriesError, match="ambiguous"):
        paris_to_utc("2025-10-26", "02:30", "line 9")
    with pytest.raises(SeriesError, match="does not exist"):
        paris_to_utc("2025-03-30", "02:30", "line 9")
    text = "Date;Heures;Taux de Co2\n2025-10-26;02:15;20\n"
    with pytest.raises(SeriesError, match="ambiguous"):
        parse_csv(text)
    ok = parse_csv("Date;Heures;Taux de Co2\n2025-10-26;04:00;20\n").strict()
    assert ok[0].start_at == datetime(2025, 10, 26, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty CSV"),
        ("Date;Heure;Consommation\n", "no CO2 column"),
        (HEADER + "\nFrance;Données temps réel;2025-10-04;01:00", "truncated"),
        (HEADER + "\nFrance;x;2025-10-04;01:00;2025-10-04 01:00;1;14", "time zone"),
    ],
)
def test_bad_csv(text: str, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        parse_csv(text)


def test_bad_json() -> None:
    with pytest.raises(SeriesError, match="results"):
        parse_json(b'{"total_count": 0}')
    with pytest.raises(SeriesError, match="malformed"):
        parse_json(b'{"results": [')

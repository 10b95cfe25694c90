"""Annual and static factors: OWID, Green Algorithms, CodeCarbon, settings."""

from pathlib import Path

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.annual import (
    as_mapping,
    parse_codecarbon_mix,
    parse_green_algorithms,
    parse_owid,
    static_factors,
)


def test_owid_real_csv(shared_data: Path) -> None:
    factors, rejected = parse_owid(
        (shared_data / "owid/carbon-intensity-electricity.csv").read_text()
    )
    table = as_mapping(factors)
    # Sample values quoted in carbon-data-sources.md (2024).
    assert table[("FRA", 2024)].value_g_per_kwh == 40.48
    assert table[("DEU", 2024)].value_g_per_kwh == 336.38
    world = table[("OWID_WRL", 2024)]
    assert world.value_g_per_kwh == 471.08 and world.aggregate and world.name == "World"
    asean = table[("ASEAN (Ember)", 2000)]
    assert asean.aggregate and asean.value_g_per_kwh == 572.58
    assert not table[("FRA", 2024)].aggregate
    assert rejected == []


def test_owid_value_column_by_position_and_errors() -> None:
    text = "Entity,Code,Year,co2_intensity__gco2_kwh\nFrance,FRA,2020,50\nFrance,FRA,2021,\n"
    factors, rejected = parse_owid(text)
    assert [(f.zone, f.year, f.value_g_per_kwh) for f in factors] == [("FRA", 2020, 50.0)]
    assert rejected[0].where == "owid line 3 column 'co2_intensity__gco2_kwh'"
    with pytest.raises(SeriesError, match="Entity,Code,Year"):
        parse_owid("Country,Year,Value\n")
    with pytest.raises(SeriesError, match="Year"):
        parse_owid("Entity,Code,Year,v\nFrance,FRA,20x0,50\n")


def test_green_algorithms_two_header_lines(shared_data: Path) -> None:
    factors, rejected = parse_green_algorithms(
        (shared_data / "green_algorithms/v3.0_CI_aggregated.csv").read_text()
    )
    table = {f.zone: f for f in factors}
    assert table["WORLD"].value_g_per_kwh == 475 and table["WORLD"].aggregate
    assert table["FR"].value_g_per_kwh == 51.28
    assert table["DE"].value_g_per_kwh == 338.66
    assert table["CN-HK"].value_g_per_kwh == 710 and not table["CN-HK"].aggregate
    assert rejected == []
    with pytest.raises(SeriesError, match="second line"):
        parse_green_algorithms("location,carbonIntensity\nFR,50\n")


def test_codecarbon_mix(shared_data: Path) -> None:
    factors, _ = parse_codecarbon_mix(
        (shared_data / "codecarbon/global_energy_mix.json").read_bytes()
    )
    aruba = next(f for f in factors if f.zone == "ABW")
    assert aruba.value_g_per_kwh == 561.224 and aruba.year == 2022


def test_static_factors() -> None:
    assert static_factors({"FR": 50})[0].value_g_per_kwh == 50
    with pytest.raises(SeriesError, match=r"static_factors\.FR"):
        static_factors({"FR": -1})

"""Mix-based intensity cross-check and factor tables (real fixtures)."""

from pathlib import Path

import pytest

from consumers.enrich.model import SeriesError
from consumers.enrich.parsers.annual import parse_pue_defaults
from consumers.enrich.parsers.mix import (
    mix_intensity,
    parse_codecarbon_factors,
    parse_em_factors,
    parse_power_breakdown,
)


def test_power_breakdown_and_em_factors(shared_data: Path) -> None:
    b = parse_power_breakdown(
        (
            shared_data / "electricitymaps/aioelectricitymaps_latest_power_breakdown_DE.json"
        ).read_bytes()
    )
    assert b.zone == "DE" and b.is_estimated and b.consumption_mw["coal"] == 23893
    assert b.production_mw["nuclear"] is None
    factors = parse_em_factors(
        (shared_data / "electricitymaps/em_default_emission_factors.json").read_bytes(), "lifecycle"
    )
    assert (factors["coal"], factors["wind"], factors["unknown"]) == (820, 11, 700)
    mix = mix_intensity(b.production_mw, factors)
    assert mix.missing_modes == ("battery discharge", "nuclear")
    # Coal 23339 MW of 48570 MW total production at 820 g/kWh alone gives ~394; the whole
    # mix (gas, biomass, ...) is higher, and below the pure-coal factor.
    assert 394 < mix.value_g_per_kwh < 820


def test_mix_by_hand() -> None:
    # 100 MW coal (820) + 100 MW wind (11): (82000 + 1100) / 200 = 415.5.
    assert mix_intensity({"coal": 100, "wind": 100, "solar": None}, {"coal": 820, "wind": 11}) == (
        415.5,
        ("solar",),
    )
    with pytest.raises(SeriesError, match="no emission factor for mode 'tidal'"):
        mix_intensity({"tidal": 5}, {})
    with pytest.raises(SeriesError, match="no positive power"):
        mix_intensity({"coal": 0}, {"coal": 820})
    with pytest.raises(SeriesError, match="negative"):
        parse_power_breakdown(
            {
                "zone": "X",
                "datetime": "2024-01-01T00:00:00Z",
                "powerConsumptionBreakdown": {"coal": -1},
                "powerProductionBreakdown": {},
            }
        )


def test_codecarbon_factors(shared_data: Path) -> None:
    f = parse_codecarbon_factors(
        (shared_data / "codecarbon/carbon_intensity_per_source.json").read_bytes()
    )
    assert f["world_average"] == 475 and f["coal"] == 995 and "coal_source" not in f


def test_green_algorithms_pue_defaults(shared_data: Path) -> None:
    v3 = parse_pue_defaults((shared_data / "green_algorithms/v3.0_defaults_PUE.csv").read_text())
    v2 = parse_pue_defaults((shared_data / "green_algorithms/v2.2_defaults_PUE.csv").read_text())
    assert v3["Unknown"][0] == 1.56 and v2["Unknown"][0] == 1.67
    assert v3["gcp"][0] == 1.12 and "uptimeinstitute" in v3["Unknown"][1]
    with pytest.raises(SeriesError, match="out of"):
        parse_pue_defaults("index,>1,\nprovider,PUE,source\nX,0.5,y\n")

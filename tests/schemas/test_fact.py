"""JobFact: CO2e and facility energy follow the stored factors when energy changes."""

import pytest

from consumers.ingest import normalize_bytes
from schemas.fact import Co2eEstimate, Footprint, fact_from_record, with_energy
from schemas.job import JobRecord


def _record(energy: str) -> JobRecord:
    value = (
        '{"jobid":5,"@submit":"2024-01-01T00:00:00","@start":"2024-01-01T00:00:00",'
        '"@end":"2024-01-01T01:00:00","state":"COMPLETED","exclusive":true,'
        '"energy_complete":false,"energy_j":' + energy + "}"
    ).encode()
    record = normalize_bytes(value)
    assert isinstance(record, JobRecord)
    return record


def test_fact_uses_jobcomp_energy_only_when_measured() -> None:
    assert fact_from_record(_record("7200000")).energy_it_j == 7_200_000
    missing = fact_from_record(_record("null"))
    assert missing.energy_it_j is None and missing.energy_origin == "none"
    assert missing.shared_node is False


def test_with_energy_rescales_by_hand_computed_factors() -> None:
    # 2 kWh IT, PUE 1.25, 300 g/kWh: facility 2.5 kWh = 9e6 J, CO2e 2 * 1.25 * 300 = 750 g.
    fact = fact_from_record(_record("null"))
    footprint = Footprint(
        site="s",
        pue_factor=1.25,
        pue_source="static:test",
        pue_coverage=1.0,
        energy_facility_j=None,
        estimates=(
            Co2eEstimate(
                provider="p",
                zone="z",
                signal="average",
                basis="lifecycle",
                factor_g_per_kwh_it=375.0,
                intensity_g_per_kwh=300.0,
                coverage=1.0,
            ),
        ),
    )
    fact = fact.__class__(
        **{**{f: getattr(fact, f) for f in fact.__struct_fields__}, "footprint": footprint}
    )
    filled = with_energy(fact, 7_200_000, "slurmdbd")
    assert filled.energy_origin == "slurmdbd"
    assert filled.footprint is not None
    assert filled.footprint.energy_facility_j == pytest.approx(9_000_000)
    assert filled.accounting_estimate is not None
    assert filled.accounting_estimate.co2e_g == pytest.approx(750.0)
    cleared = with_energy(filled, None, "none")
    assert cleared.accounting_estimate is not None and cleared.accounting_estimate.co2e_g is None

"""The enrich stage on hand-computed jobs (real Electricity Maps DE history)."""

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.parsers import electricitymaps
from consumers.enrich.stage import EnrichError, enrich
from jobcarbon.settings import Settings
from schemas.fact import JobFact, fact_from_record, with_energy
from schemas.job import EnergyStatus, JobRecord

NOW = datetime(2024, 3, 7, tzinfo=UTC)
START = datetime(2024, 3, 5, 20, 30, tzinfo=UTC)


def settings(**carbon: object) -> Settings:
    base: dict[str, object] = {
        "clusters": {"alps": {"zone": "DE", "site": "cscs"}},
        "sites": {"cscs": {"pue": 1.2, "pue_source": "test"}},
        "zone_series": {
            "DE": [
                {"provider": "watttime", "signal": "marginal"},
                {"provider": "electricitymaps", "signal": "average"},
            ]
        },
    }
    base.update(carbon)
    return Settings(carbon=base)  # type: ignore[arg-type]


def fact(
    energy_j: int | None, start: datetime = START, hours: float = 2.0, cluster: str = "alps"
) -> JobFact:
    record = JobRecord(
        cluster=cluster,
        job_id=1,
        submit_time=start,
        start_time=start,
        end_time=start + timedelta(hours=hours),
        energy_j=energy_j,
        energy_status=EnergyStatus.MEASURED if energy_j is not None else EnergyStatus.MISSING,
    )
    return fact_from_record(record)


@pytest.fixture
def lookup(shared_data: Path) -> InMemoryLookup:
    lk = InMemoryLookup()
    raw = shared_data / "electricitymaps/aioelectricitymaps_carbon_intensity_history_DE.json"
    lk.add(electricitymaps.parse(raw.read_bytes(), NOW).strict())
    lk.add(
        IntensityPoint(
            provider="watttime",
            zone="DE",
            signal="marginal",
            basis=None,
            start_at=START - timedelta(hours=1),
            end_at=START + timedelta(hours=3),
            value_g_per_kwh=900.0,
        )
        for _ in range(1)
    )
    return lk


def test_footprint_by_hand(lookup: InMemoryLookup) -> None:
    # Run 20:30-22:30Z over DE hourly 599 (20h), 607 (21h), 599 (22h):
    # intensity = (30*599 + 60*607 + 30*599) / 120 = 72360/120 = 603; PUE 1.2 -> 723.6 g/kWh.
    # 7.2e6 J = 2 kWh -> 1447.2 g; facility energy 7.2e6 * 1.2 = 8.64e6 J.
    out = enrich(fact(7_200_000), lookup, lookup, settings(), NOW)
    fp = out.footprint
    assert fp is not None and fp.computed_at == NOW
    assert fp.pue_factor == pytest.approx(1.2) and fp.pue_source == "static:test"
    assert fp.energy_facility_j == pytest.approx(8.64e6)
    acct = out.accounting_estimate
    assert acct is not None and acct.provider == "electricitymaps" and acct.basis == "lifecycle"
    assert acct.intensity_g_per_kwh == pytest.approx(603)
    assert acct.factor_g_per_kwh_it == pytest.approx(723.6)
    assert acct.co2e_g == pytest.approx(1447.2)
    assert (acct.coverage, acct.fallback, acct.estimated_share) == (1.0, None, 0.0)
    marginal = fp.estimates[0]
    assert marginal.signal == "marginal" and marginal.co2e_g == pytest.approx(2 * 1.2 * 900)


def test_energy_filled_later_rescales_exactly(lookup: InMemoryLookup) -> None:
    out = enrich(fact(None), lookup, lookup, settings(), NOW)
    acct = out.accounting_estimate
    assert acct is not None and acct.co2e_g is None
    assert out.footprint is not None and out.footprint.energy_facility_j is None
    filled = with_energy(out, 3_600_000, "slurmdbd")
    assert filled.accounting_estimate is not None
    assert filled.accounting_estimate.co2e_g == pytest.approx(723.6)


def test_estimated_points_and_gaps(lookup: InMemoryLookup) -> None:
    # Run 18:00-21:00Z on 2024-03-06: 18h (663, estimated) and 19h (estimated) exist, 20h is
    # beyond the history; nearest limit 30 min fills [20:00, 20:30) with the 19h value, then
    # the configured default 475 (no annual value) for [20:30, 21:00).
    hist = {
        p.start_at.hour: p.value_g_per_kwh
        for p in lookup.points("electricitymaps", "DE", "average", NOW - timedelta(days=2), NOW)
        if p.start_at.day == 6
    }
    out = enrich(
        fact(3_600_000, datetime(2024, 3, 6, 18, tzinfo=UTC), 3.0),
        lookup,
        lookup,
        settings(nearest_limit_s=1800),
        NOW,
    )
    acct = out.accounting_estimate
    assert acct is not None
    expected = (hist[18] + hist[19] + 0.5 * hist[19] + 0.5 * 475) / 3
    assert acct.intensity_g_per_kwh == pytest.approx(expected)
    assert acct.coverage == pytest.approx(2 / 3) and acct.estimated_share == pytest.approx(2 / 3)
    assert acct.fallback == "default"


def test_annual_fallback_through_zone_alias(lookup: InMemoryLookup) -> None:
    from consumers.enrich.model import AnnualFactor

    lookup.add_annual([AnnualFactor(provider="owid", zone="DEU", year=2023, value_g_per_kwh=380)])
    out = enrich(
        fact(3_600_000, datetime(2024, 6, 1, tzinfo=UTC), 1.0),
        lookup,
        lookup,
        settings(annual_zones={"DE": "DEU"}),
        NOW,
    )
    acct = out.accounting_estimate
    assert acct is not None and acct.fallback == "annual"
    assert acct.intensity_g_per_kwh == 380 and acct.coverage == 0.0


def test_unconfigured_cluster_uses_defaults() -> None:
    lk = InMemoryLookup()
    out = enrich(fact(3_600_000, cluster="other"), lk, lk, Settings(), NOW)
    acct = out.accounting_estimate
    assert acct is not None and acct.zone == "WORLD"
    assert (acct.intensity_g_per_kwh, acct.fallback, acct.coverage) == (475.0, "default", 0.0)
    assert out.footprint is not None and out.footprint.pue_factor == 1.56
    assert acct.co2e_g == pytest.approx(475 * 1.56)


def test_measured_pue(lookup: InMemoryLookup) -> None:
    # PUE 1.1 measured over the first hour only; static 1.2 after: factor over 20:30-22:30 =
    # (30*599*1.1 + 30*607*1.1 + 30*607*1.2 + 30*599*1.2) / 120
    lookup.add_pue(
        [PuePoint(site="cscs", start_at=START, end_at=START + timedelta(hours=1), pue=1.1)]
    )
    out = enrich(fact(3_600_000), lookup, lookup, settings(), NOW)
    fp = out.footprint
    assert fp is not None and fp.pue_coverage == 0.5 and fp.pue_factor == pytest.approx(1.15)
    assert fp.pue_source.startswith("measured")
    acct = out.accounting_estimate
    assert acct is not None
    expected = (30 * 599 * 1.1 + 30 * 607 * 1.1 + 30 * 607 * 1.2 + 30 * 599 * 1.2) / 120
    assert acct.factor_g_per_kwh_it == pytest.approx(expected)


def test_time_of_use_cost(lookup: InMemoryLookup) -> None:
    # 20:30-22:30Z, peak 21-22h at 0.30, else 0.10 (UTC); PUE 1.2, 2 kWh IT:
    # price per IT kWh = 1.2 * (0.25*0.10 + 0.5*0.30 + 0.25*0.10) = 1.2 * 0.2 = 0.24 -> 0.48.
    tariffs = {
        "cscs": {
            "name": "tou",
            "currency": "CHF",
            "periods": [
                {"start_hour": 21, "end_hour": 22, "price_per_kwh": 0.30},
                {"start_hour": 0, "end_hour": 24, "price_per_kwh": 0.10},
            ],
        }
    }
    out = enrich(fact(7_200_000), lookup, lookup, settings(tariffs=tariffs), NOW)
    assert out.footprint is not None
    assert out.footprint.cost == pytest.approx(0.48)
    assert (out.footprint.currency, out.footprint.tariff) == ("CHF", "tou")


def test_jobs_without_a_run() -> None:
    lk = InMemoryLookup()
    pending = fact(None)
    pending = pending.__class__(
        record=pending.record.replace(start_time=None, end_time=None),
        energy_it_j=None,
        energy_origin="none",
    )
    assert enrich(pending, lk, lk, Settings(), NOW).footprint is None
    started = fact(None)
    started = started.__class__(
        record=started.record.replace(event="start", end_time=None),
        energy_it_j=None,
        energy_origin="none",
    )
    assert enrich(started, lk, lk, Settings(), NOW).footprint is None
    bad = fact(1)
    bad = bad.__class__(
        record=bad.record.replace(end_time=START - timedelta(seconds=1)),
        energy_it_j=1,
        energy_origin="jobcomp",
    )
    with pytest.raises(EnrichError, match="end_time"):
        enrich(bad, lk, lk, Settings(), NOW)


class SweepOnly:
    """The lookup behind a plain protocol implementation: the stage takes its general path
    (window of points, then the sweep) instead of the cumulative index."""

    def __init__(self, inner: InMemoryLookup) -> None:
        self.inner = inner

    def points(self, *args: Any) -> Any:
        return self.inner.points(*args)

    def annual(self, zone: str, year: int) -> Any:
        return self.inner.annual(zone, year)

    def pue_points(self, *args: Any) -> Any:
        return self.inner.pue_points(*args)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_index_path_equals_the_sweep_path(lookup: InMemoryLookup) -> None:
    # Measured PUE with a gap, then random runs (short, long, zero-length, outside the
    # history, on boundaries) under three nearest limits: every footprint field agrees.
    lookup.add_pue(
        PuePoint(site="cscs", start_at=START + timedelta(minutes=30 * i),
                 end_at=START + timedelta(minutes=30 * i + 30), pue=1.1 + 0.01 * (i % 7))
        for i in range(-40, 60) if i % 9
    )  # fmt: skip
    sweep = SweepOnly(lookup)
    rng = random.Random(5)
    for nearest_s in (0.0, 1800.0, 7200.0):
        cfg = settings(nearest_limit_s=nearest_s)
        for _ in range(120):
            start = START + timedelta(seconds=rng.randrange(-4 * 86400, 3 * 86400))
            if rng.random() < 0.2:
                start = start.replace(minute=0, second=0)
            hours = rng.choice((0.0, rng.uniform(0, 0.1), rng.uniform(0, 60)))
            job = fact(rng.choice((None, 3_600_000)), start, hours)
            fast = enrich(job, lookup, lookup, cfg, NOW).footprint
            slow = enrich(job, sweep, sweep, cfg, NOW).footprint  # type: ignore[arg-type]
            assert fast is not None and slow is not None
            assert (fast.site, fast.pue_source) == (slow.site, slow.pue_source)
            for name in ("pue_factor", "pue_coverage", "energy_facility_j"):
                assert close(getattr(fast, name), getattr(slow, name)), name
            for f, s in zip(fast.estimates, slow.estimates, strict=True):
                assert (f.provider, f.signal, f.basis, f.fallback) == (
                    s.provider,
                    s.signal,
                    s.basis,
                    s.fallback,
                )
                for name in ("factor_g_per_kwh_it", "intensity_g_per_kwh", "coverage",
                             "estimated_share", "co2e_g"):  # fmt: skip
                    assert close(getattr(f, name), getattr(s, name)), name

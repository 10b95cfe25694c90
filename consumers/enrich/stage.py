"""The enrich stage: a ``JobFact`` in, the same fact with its ``Footprint`` out.

Pure: the series come through the lookups, the clock through ``now``. For the cluster's zone
it integrates every configured series (``settings.carbon.series(zone)``) with the site's PUE
over the run; the accounting estimate is the first average one (``JobFact.accounting_estimate``)
and marginal series are kept for scheduling only. CO2e and facility energy follow
``schemas.fact.with_energy``, so a later energy fill rescales them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from consumers.enrich.integrate import Integration, fallback_of, integrate
from consumers.enrich.lookup import InMemoryLookup, IntensityLookup, PueLookup
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.prefix import StepIndex, micros
from consumers.enrich.profile import UNIFORM, EnergyProfile
from consumers.enrich.tariff import tariff_price_points
from jobcarbon.settings import CarbonSettings, SeriesSettings, Settings, TariffSettings
from schemas.fact import (
    J_PER_KWH,
    Basis,
    Co2eEstimate,
    Footprint,
    JobFact,
    co2e_g_of,
    facility_energy_of,
)


class EnrichError(ValueError):
    """A fact that cannot be enriched (e.g. it ends before it starts); names the field."""


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    """What enriching a job of one cluster needs, resolved once per cluster and lookup state
    (``plan_for``), not once per job: its zone and site, the site's static PUE, the static
    or annual-average zone, the configured series, the site's tariff, and every series'
    cumulative index when the lookup has them all (else None: the general path)."""

    carbon: CarbonSettings
    site: str
    zone: str
    static_pue: float
    static_pue_source: str
    static_g: float | None
    annual_zone: str
    specs: Sequence[SeriesSettings]
    tariff: TariffSettings | None
    indexes: Sequence[StepIndex] | None


def plan_for(
    carbon: CarbonSettings,
    cluster_name: str | None,
    intensity_lookup: IntensityLookup,
    pue_lookup: PueLookup,
    profile: EnergyProfile = UNIFORM,
) -> ClusterPlan:
    """The plan of a cluster's jobs over these lookups (valid while they do not change)."""
    cluster = carbon.cluster(cluster_name)
    zone = cluster.zone
    site = carbon.site(cluster.site)
    specs = carbon.series(zone)
    indexes: list[StepIndex] | None = None
    if (
        profile is UNIFORM
        and pue_lookup is intensity_lookup
        and isinstance(intensity_lookup, InMemoryLookup)
    ):
        indexes = []
        for spec in specs:
            index = intensity_lookup.step_index(
                spec.provider, zone, spec.signal, cluster.site,
                nearest_s=carbon.nearest_limit_s, static_pue=site.pue,
            )  # fmt: skip
            if index is None:  # overlapping points: only the sweep resolves them
                indexes = None
                break
            indexes.append(index)
    return ClusterPlan(
        carbon=carbon,
        site=cluster.site,
        zone=zone,
        static_pue=site.pue,
        static_pue_source=f"static:{site.pue_source}",
        static_g=carbon.static_factors.get(zone),
        annual_zone=carbon.annual_zones.get(zone, zone),
        specs=specs,
        tariff=carbon.tariffs.get(cluster.site),
        indexes=indexes,
    )


def enrich(
    fact: JobFact,
    intensity_lookup: IntensityLookup,
    pue_lookup: PueLookup,
    settings: Settings,
    now: datetime,
    profile: EnergyProfile = UNIFORM,
) -> JobFact:
    """The fact with its footprint. A job that never started (no start time) and a
    job-start event (not a finished job) have none."""
    record = fact.record
    if record.start_time is None or record.event == "start":
        return fact
    plan = plan_for(settings.carbon, record.cluster, intensity_lookup, pue_lookup, profile)
    return enrich_planned(fact, plan, intensity_lookup, pue_lookup, now, profile)


def enrich_planned(
    fact: JobFact,
    plan: ClusterPlan,
    intensity_lookup: IntensityLookup,
    pue_lookup: PueLookup,
    now: datetime,
    profile: EnergyProfile = UNIFORM,
) -> JobFact:
    """``enrich`` with the cluster's plan already made (``plan_for`` over the same lookups
    and profile): what a stage calls for every job of a batch."""
    record = fact.record
    start, end = record.start_time, record.end_time
    if start is None or record.event == "start":
        return fact
    if end is None:
        raise EnrichError(f"end_time is missing for a job that started at {start.isoformat()}")
    if end < start:
        raise EnrichError(f"end_time {end.isoformat()} is before start_time {start.isoformat()}")
    carbon = plan.carbon
    annual_g = plan.static_g
    if annual_g is None:
        annual = intensity_lookup.annual(plan.annual_zone, start.year)
        annual_g = annual.value_g_per_kwh if annual else None
    fallback_g, fallback_kind = fallback_of(carbon.default_intensity_g_per_kwh, annual_g)
    specs = plan.specs
    results: list[tuple[Integration, Basis | None]] | None = None
    if plan.indexes is not None:
        # Every series through its cumulative index (``consumers.enrich.prefix``: two
        # bisects per run).
        start_us, end_us = micros(start), micros(end)
        results = [
            (
                index.integrate(start_us, end_us, fallback_g, fallback_kind),
                index.basis(start_us, end_us),
            )
            for index in plan.indexes
        ]
    tariff = plan.tariff
    energy = fact.energy_it_j
    priced = tariff is not None and energy is not None
    sweep = None
    if results is None or not results or priced:  # the general path is needed
        sweep = _Sweep(
            start, end, pue_lookup, plan.site, carbon, annual_g, plan.static_pue, profile
        )
        if results is None:
            results = [sweep.series(intensity_lookup, plan.zone, spec) for spec in specs]
    zone = plan.zone
    estimates = tuple(
        Co2eEstimate(
            provider=spec.provider,
            zone=zone,
            signal=spec.signal,
            basis=basis,
            factor_g_per_kwh_it=result.factor_g_per_kwh_it,
            intensity_g_per_kwh=result.intensity_g_per_kwh,
            coverage=result.coverage,
            fallback=result.fallback,
            estimated_share=result.estimated_share,
            co2e_g=co2e_g_of(energy, result.factor_g_per_kwh_it),
        )
        for spec, (result, basis) in zip(specs, results, strict=True)
    )
    # The PUE is the same under every series; with none configured it still matters.
    if results:
        pue_result = results[0][0]
    else:  # no series configured: the PUE alone
        assert sweep is not None
        pue_result = sweep.run([])
    pue_source = plan.static_pue_source
    if pue_result.pue_coverage > 0:
        pue_source = f"measured (coverage {pue_result.pue_coverage:.3f}); else {pue_source}"
    # CO2e and facility energy follow from the factors and the fact's energy by the rule
    # ``with_energy`` applies when the energy changes later (``schemas.fact``).
    footprint = Footprint(
        site=plan.site,
        pue_factor=pue_result.pue_factor,
        pue_source=pue_source,
        pue_coverage=pue_result.pue_coverage,
        energy_facility_j=facility_energy_of(energy, pue_result.pue_factor),
        estimates=estimates,
        computed_at=now,
    )
    if priced:
        assert tariff is not None and energy is not None and sweep is not None
        prices = tariff_price_points(tariff, start, max(end, start + timedelta(seconds=1)))
        price = sweep.run(prices)  # "g/kWh" here is currency per IT kWh, PUE included
        footprint = msgspec.structs.replace(
            footprint,
            cost=energy / J_PER_KWH * price.factor_g_per_kwh_it,
            currency=tariff.currency,
            tariff=tariff.name,
        )
    return msgspec.structs.replace(fact, footprint=footprint)


class _Sweep:
    """The general path: the run's points swept with ``integrate`` (any profile, any lookup,
    overlapping points, tariffs)."""

    def __init__(
        self,
        start: datetime,
        end: datetime,
        pue_lookup: PueLookup,
        site: str,
        carbon: CarbonSettings,
        annual_g: float | None,
        static_pue: float,
        profile: EnergyProfile,
    ) -> None:
        self.start, self.end, self.pue_lookup, self.site = start, end, pue_lookup, site
        self.carbon, self.annual_g, self.static_pue, self.profile = (
            carbon,
            annual_g,
            static_pue,
            profile,
        )
        self._pue: Sequence[PuePoint] | None = None  # read on first use only

    def run(self, points: Sequence[IntensityPoint]) -> Integration:
        """``points`` and the site's PUE integrated over the run."""
        start, end = self.start, self.end
        if self._pue is None:
            window_end = max(end, start + timedelta(seconds=1))
            self._pue = self.pue_lookup.pue_points(self.site, start, window_end)
        return integrate(
            start,
            end,
            points,
            default_g_per_kwh=self.carbon.default_intensity_g_per_kwh,
            annual_g_per_kwh=self.annual_g,
            nearest_limit=timedelta(seconds=self.carbon.nearest_limit_s),
            static_pue=self.static_pue,
            pue_points=self._pue,
            profile=self.profile,
        )

    def series(
        self, lookup: IntensityLookup, zone: str, spec: SeriesSettings
    ) -> tuple[Integration, Basis | None]:
        """One configured series over the run, and the basis its points share."""
        start, end = self.start, self.end
        nearest = timedelta(seconds=self.carbon.nearest_limit_s)
        # A zero-length run is its first instant: the window must hold the point starting
        # there even without a nearest limit.
        window_end = max(end, start + timedelta(seconds=1)) + nearest
        points = list(lookup.points(spec.provider, zone, spec.signal, start - nearest, window_end))
        bases = {p.basis for p in points if p.start_at < end and p.end_at > start}
        return self.run(points), bases.pop() if len(bases) == 1 else None

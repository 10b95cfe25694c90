"""The enrich stage: a ``JobFact`` in, the same fact with its ``Footprint`` out.

Pure: the series come through the lookups, the clock through ``now``. For the cluster's zone
it integrates every configured series (``settings.carbon.series(zone)``) with the site's PUE
over the run; the accounting estimate is the first average one (``JobFact.accounting_estimate``)
and marginal series are kept for scheduling only. CO2e and facility energy follow
``schemas.fact.with_energy``, so a later energy fill rescales them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from consumers.enrich.integrate import Integration, fallback_of, integrate
from consumers.enrich.lookup import InMemoryLookup, IntensityLookup, PueLookup
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.prefix import micros
from consumers.enrich.profile import UNIFORM, EnergyProfile
from consumers.enrich.tariff import tariff_price_points
from jobcarbon.settings import Settings
from schemas.fact import J_PER_KWH, Co2eEstimate, Footprint, JobFact, with_energy


class EnrichError(ValueError):
    """A fact that cannot be enriched (e.g. it ends before it starts); names the field."""


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
    start, end = record.start_time, record.end_time
    if start is None or record.event == "start":
        return fact
    if end is None:
        raise EnrichError(f"end_time is missing for a job that started at {start.isoformat()}")
    if end < start:
        raise EnrichError(f"end_time {end.isoformat()} is before start_time {start.isoformat()}")
    carbon = settings.carbon
    cluster = carbon.cluster(record.cluster)
    site = carbon.site(cluster.site)
    nearest = timedelta(seconds=carbon.nearest_limit_s)
    annual_zone = carbon.annual_zones.get(cluster.zone, cluster.zone)
    annual = intensity_lookup.annual(annual_zone, start.year)
    static = carbon.static_factors.get(cluster.zone)
    annual_g = static if static is not None else annual.value_g_per_kwh if annual else None

    pue_window: list[Sequence[PuePoint]] = []  # read once, only if the general path runs

    def run(points: Sequence[IntensityPoint]) -> Integration:
        if not pue_window:
            window_end = max(end, start + timedelta(0, 1))
            pue_window.append(pue_lookup.pue_points(cluster.site, start, window_end))
        return integrate(
            start,
            end,
            points,
            default_g_per_kwh=carbon.default_intensity_g_per_kwh,
            annual_g_per_kwh=annual_g,
            nearest_limit=nearest,
            static_pue=site.pue,
            pue_points=pue_window[0],
            profile=profile,
        )

    # Uniform power over an in-memory lookup: the cumulative index answers each series with
    # two bisects (consumers.enrich.prefix); otherwise the sweep over the run's points.
    indexed = (
        intensity_lookup
        if profile is UNIFORM
        and pue_lookup is intensity_lookup
        and isinstance(intensity_lookup, InMemoryLookup)
        else None
    )
    start_us = micros(start) if indexed is not None else 0
    end_us = micros(end) if indexed is not None else 0
    fallback_g, fallback_kind = fallback_of(carbon.default_intensity_g_per_kwh, annual_g)
    estimates = []
    pue_result: Integration | None = None
    for spec in carbon.series(cluster.zone):
        index = None
        if indexed is not None:
            index = indexed.step_index(
                spec.provider,
                cluster.zone,
                spec.signal,
                cluster.site,
                nearest_s=carbon.nearest_limit_s,
                static_pue=site.pue,
            )
        if index is not None:
            result = index.integrate(start_us, end_us, fallback_g, fallback_kind)
            basis = index.basis(start_us, end_us)
        else:
            # A zero-length run is its first instant: the window must hold the point
            # starting there even without a nearest limit.
            window_end = max(end, start + timedelta(seconds=1)) + nearest
            points = list(
                intensity_lookup.points(
                    spec.provider, cluster.zone, spec.signal, start - nearest, window_end
                )
            )
            result = run(points)
            bases = {p.basis for p in points if p.start_at < end and p.end_at > start}
            basis = bases.pop() if len(bases) == 1 else None
        pue_result = pue_result or result
        estimates.append(
            Co2eEstimate(
                provider=spec.provider,
                zone=cluster.zone,
                signal=spec.signal,
                basis=basis,
                factor_g_per_kwh_it=result.factor_g_per_kwh_it,
                intensity_g_per_kwh=result.intensity_g_per_kwh,
                coverage=result.coverage,
                fallback=result.fallback,
                estimated_share=result.estimated_share,
            )
        )
    if pue_result is None:  # no series configured: PUE still matters for facility energy
        pue_result = run([])
    measured = pue_result.pue_coverage > 0
    footprint = Footprint(
        site=cluster.site,
        pue_factor=pue_result.pue_factor,
        pue_source=f"measured (coverage {pue_result.pue_coverage:.3f}); else static:"
        f"{site.pue_source}"
        if measured
        else f"static:{site.pue_source}",
        pue_coverage=pue_result.pue_coverage,
        energy_facility_j=None,
        estimates=tuple(estimates),
        computed_at=now,
    )
    tariff = carbon.tariffs.get(cluster.site)
    if tariff is not None and fact.energy_it_j is not None:
        prices = tariff_price_points(tariff, start, max(end, start + timedelta(seconds=1)))
        price = run(prices)  # "g/kWh" here is currency per IT kWh, PUE included
        footprint = msgspec.structs.replace(
            footprint,
            cost=fact.energy_it_j / J_PER_KWH * price.factor_g_per_kwh_it,
            currency=tariff.currency,
            tariff=tariff.name,
        )
    enriched = msgspec.structs.replace(fact, footprint=footprint)
    return with_energy(enriched, fact.energy_it_j, fact.energy_origin)

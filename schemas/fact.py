"""What travels from enrich and reconcile into the warehouse sink: one ``JobFact`` per job.

A job's footprint is kept as *factors* per carbon-intensity estimate, so reconciliation can
fill in or correct the energy later and the CO2e follows exactly, without re-reading any
time series: for uniform or any fixed-shape power profile,

    co2e_g = energy_it_kwh * factor_g_per_kwh_it,
    factor_g_per_kwh_it = sum_i share_i * pue_i * intensity_i

where ``share_i`` is the share of the job's IT energy in interval ``i`` (sums to 1 over the
run), and ``energy_facility_j = energy_it_j * pue_factor`` with
``pue_factor = sum_i share_i * pue_i``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from schemas.job import EnergyStatus, JobRecord

J_PER_KWH: Final = 3_600_000.0

Signal = Literal["average", "marginal"]
Basis = Literal["lifecycle", "direct"]
ReconcileStatus = Literal[
    "not_checked",  # reconciliation not wired or not run yet
    "match",  # jobcomp and slurmdbd agree
    "energy_filled",  # jobcomp had no usable energy; slurmdbd did
    "energy_corrected",  # both had energy; slurmdbd's (authoritative, final) differs
    "missing_in_db",  # settling window passed, no slurmdbd row
    "conflict",  # identity fields disagree (account, state, times...)
    "unreconciled",  # database unreachable or not yet settled; the sweep retries
]
EnergyOrigin = Literal["jobcomp", "slurmdbd", "none"]


class Co2eEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """CO2e of one job under one carbon-intensity series (provider, zone, signal)."""

    provider: str  # "electricitymaps", "uk-carbon-intensity", "rte", "watttime", "owid", ...
    zone: str
    signal: Signal  # accounting uses "average"; "marginal" is for scheduling only
    basis: Basis | None
    factor_g_per_kwh_it: float  # energy-weighted PUE x intensity over the run
    intensity_g_per_kwh: float  # energy-weighted intensity over the run (PUE excluded)
    coverage: float  # share of the run covered by real series points, 0..1
    fallback: str | None = None  # what filled gaps: "nearest", "annual", "default", None
    estimated_share: float = 0.0  # share of the run covered by provider-estimated points
    co2e_g: float | None = None  # None while the job has no usable energy


class Footprint(msgspec.Struct, frozen=True, kw_only=True):
    """A job's facility energy and CO2e, with provenance."""

    site: str
    pue_factor: float  # energy-weighted PUE over the run
    pue_source: str  # "static:<source>" or "measured" (+ coverage)
    pue_coverage: float
    energy_facility_j: float | None
    estimates: tuple[Co2eEstimate, ...] = ()
    cost: float | None = None
    currency: str | None = None
    tariff: str | None = None
    computed_at: datetime | None = None


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    """How the job compares with slurmdbd (``<cluster>_job_table``)."""

    status: ReconcileStatus = "not_checked"
    db_energy_j: int | None = None
    db_job_db_inx: int | None = None
    db_account: str | None = None
    db_partition: str | None = None
    db_state: str | None = None
    differences: tuple[str, ...] = ()  # "field: jobcomp=X db=Y", for admins
    checked_at: datetime | None = None
    attempts: int = 0


class JobFact(msgspec.Struct, frozen=True, kw_only=True):
    """One job as the sink lands it: the normalized record plus enrichment and
    reconciliation. ``energy_it_j`` is the energy the footprint uses."""

    record: JobRecord
    energy_it_j: int | None
    energy_origin: EnergyOrigin
    footprint: Footprint | None = None
    reconciliation: Reconciliation = Reconciliation()
    shared_node: bool | None = None

    @property
    def accounting_estimate(self) -> Co2eEstimate | None:
        """The first average-signal estimate: what footprints and credit are charged with."""
        if self.footprint is None:
            return None
        for e in self.footprint.estimates:  # a loop, not next(genexpr): the sink calls
            if e.signal == "average":  # this for every fact
                return e
        return None


def fact_from_record(record: JobRecord) -> JobFact:
    """The fact before enrichment and reconciliation: jobcomp energy when it is usable."""
    usable = record.energy_status is EnergyStatus.MEASURED and record.energy_j is not None
    return JobFact(
        record=record,
        energy_it_j=record.energy_j if usable else None,
        energy_origin="jobcomp" if usable else "none",
        shared_node=None if record.exclusive is None else not record.exclusive,
    )


def co2e_g_of(energy_it_j: int | None, factor_g_per_kwh_it: float) -> float | None:
    """CO2e in grams of ``energy_it_j`` under an estimate's factor (None without energy)."""
    return None if energy_it_j is None else energy_it_j / J_PER_KWH * factor_g_per_kwh_it


def facility_energy_of(energy_it_j: int | None, pue_factor: float) -> float | None:
    """Facility energy in joules of ``energy_it_j`` under a footprint's PUE factor."""
    return None if energy_it_j is None else energy_it_j * pue_factor


def with_energy(fact: JobFact, energy_it_j: int | None, origin: EnergyOrigin) -> JobFact:
    """The same fact with another IT energy (e.g. filled from slurmdbd): facility energy and
    every CO2e estimate follow from the stored factors."""
    footprint = fact.footprint
    if footprint is not None:
        footprint = msgspec.structs.replace(
            footprint,
            energy_facility_j=facility_energy_of(energy_it_j, footprint.pue_factor),
            estimates=tuple(
                msgspec.structs.replace(e, co2e_g=co2e_g_of(energy_it_j, e.factor_g_per_kwh_it))
                for e in footprint.estimates
            ),
        )
    return msgspec.structs.replace(
        fact, energy_it_j=energy_it_j, energy_origin=origin, footprint=footprint
    )

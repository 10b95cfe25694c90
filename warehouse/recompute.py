"""Recompute stored facts' footprints and roll-ups after an intensity or PUE revision.

Pure core (``plan_recompute``): each stored fact is enriched again from the current series
(``consumers.enrich.stage.enrich``) and mapped to its footprint columns by the sink's own
``prepare``; only facts whose footprint columns or CO2e rows differ are updated, and the
roll-ups move by ``new contribution - old contribution`` (``warehouse.sink.delta``), so
untouched facts and roll-up rows do not change at all.

Thin shell (``recompute``): selects the facts whose run overlaps ``[start, end)``, loads
the series they need from the warehouse (latest versions as of ``now``), and writes the
plan in one transaction. ``content_hash`` is left as it was: a replay of the original fact
is still "unchanged" for the sink and does not undo the recomputation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, select

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import AnnualFactor
from consumers.enrich.stage import enrich
from jobcarbon.settings import Settings
from schemas.fact import JobFact
from schemas.job import EnergyStatus, JobRecord
from warehouse.models import table_of
from warehouse.models.dims import DimCluster
from warehouse.models.facts import FactJob, FactJobCo2e
from warehouse.series_store import read_intensity, read_pue
from warehouse.sink.delta import (
    ROLLUP_INPUT_COLUMNS,
    RollupDelta,
    RollupInput,
    add_contributions,
    empty_delta,
    nonzero,
)
from warehouse.sink.prepare import CO2E_FIELDS, FOOTPRINT_FIELDS, prepare
from warehouse.sink.rollups import apply_rollups

FACT: Final = table_of(FactJob)
CO2E: Final = table_of(FactJobCo2e)
CLUSTER: Final = table_of(DimCluster)

#: ``fact_job`` columns the footprint fills (``warehouse.sink.prepare`` maps them).
FOOTPRINT_COLUMNS: Final = FOOTPRINT_FIELDS
CO2E_COLUMNS: Final = CO2E_FIELDS


@dataclass(frozen=True)
class StoredFact:
    """What recompute reads of one stored fact."""

    id: int
    cluster: str
    job_id: int
    submit_at: datetime
    start_at: datetime | None
    end_at: datetime | None
    energy_it_j: int | None
    energy_origin: str
    columns: Mapping[str, Any]  # footprint columns + roll-up input columns as stored
    co2e: tuple[Mapping[str, Any], ...]


@dataclass
class RecomputePlan:
    """The facts to update and the roll-up delta."""

    updates: list[tuple[int, dict[str, Any], tuple[dict[str, Any], ...]]] = field(
        default_factory=list
    )
    unchanged: int = 0
    rollups: RollupDelta = field(default_factory=empty_delta)

    @property
    def changed_ids(self) -> list[int]:
        """Ids of the facts whose footprint changed."""
        return [fact_id for fact_id, _, _ in self.updates]


def plan_recompute(
    stored: Iterable[StoredFact],
    lookup: InMemoryLookup,
    settings: Settings,
    now: datetime,
) -> RecomputePlan:
    """Pure: enrich every stored fact again and keep those that change."""
    out = RecomputePlan()
    moved: list[RollupInput] = []
    signs: list[float] = []
    for fact in stored:
        columns, co2e = _footprint_of(fact, lookup, settings, now)
        if _same(fact.columns, columns) and _same_rows(fact.co2e, co2e):
            out.unchanged += 1
            continue
        out.updates.append((fact.id, columns, co2e))
        old = _rollup_input(fact.columns)
        new = old._replace(
            energy_facility_j=columns["energy_facility_j"],
            co2e_g=columns["co2e_g"],
            cost=columns["cost"],
        )
        if new != old:  # a changed CO2e row alone moves no roll-up
            moved += [old, new]
            signs += [-1.0, 1.0]
    add_contributions(out.rollups, moved, signs)
    out.rollups = nonzero(out.rollups)
    return out


def _footprint_of(
    fact: StoredFact, lookup: InMemoryLookup, settings: Settings, now: datetime
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    record = JobRecord(
        cluster=fact.cluster,
        job_id=fact.job_id,
        submit_time=fact.submit_at,
        start_time=fact.start_at,
        end_time=fact.end_at,
        energy_j=fact.energy_it_j,
        energy_status=EnergyStatus.MEASURED
        if fact.energy_it_j is not None
        else EnergyStatus.MISSING,
    )
    origin = fact.energy_origin if fact.energy_origin in ("jobcomp", "slurmdbd") else "none"
    job = JobFact(record=record, energy_it_j=fact.energy_it_j, energy_origin=origin)  # type: ignore[arg-type]
    prepared = prepare(enrich(job, lookup, lookup, settings, now), hashed=False)
    return {k: prepared.columns[k] for k in FOOTPRINT_COLUMNS}, prepared.co2e


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(
        _equal(old.get(k), new.get(k)) for k in FOOTPRINT_COLUMNS if k != "footprint_computed_at"
    )


def _same_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> bool:
    def key(row: Mapping[str, Any]) -> tuple[str, str, str]:
        return (row["provider"], row["zone"], row["signal"])

    if len(old) != len(new):
        return False
    by_key = {key(r): r for r in old}
    return all(
        key(r) in by_key and all(_equal(by_key[key(r)].get(c), r.get(c)) for c in CO2E_COLUMNS)
        for r in new
    )


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b)


def _rollup_input(columns: Mapping[str, Any]) -> RollupInput:
    return RollupInput(*(columns[name] for name in ROLLUP_INPUT_COLUMNS))


# --- shell -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecomputeResult:
    """What ``recompute`` did."""

    examined: int
    changed_ids: tuple[int, ...]
    rollup_rows: int


def recompute(
    engine: Engine,
    settings: Settings,
    start: datetime,
    end: datetime,
    now: datetime,
    annual: Sequence[AnnualFactor] = (),
) -> RecomputeResult:
    """Recompute the facts whose run overlaps ``[start, end)`` (one transaction)."""
    with engine.begin() as conn:
        stored = load_facts(conn, start, end)
        lookup = load_lookup(conn, settings, stored, annual)
        plan = plan_recompute(stored, lookup, settings, now)
        apply_plan(conn, plan, now)
    rows = sum(len(r) for r in plan.rollups.values())
    return RecomputeResult(len(stored), tuple(plan.changed_ids), rows)


def load_facts(conn: Connection, start: datetime, end: datetime) -> list[StoredFact]:
    """Facts that ran during ``[start, end)`` with their footprint and CO2e rows."""
    wanted = sorted(set(FOOTPRINT_COLUMNS) | set(ROLLUP_INPUT_COLUMNS))
    query = (
        select(
            FACT.c.id,
            CLUSTER.c.name.label("cluster_name"),
            FACT.c.job_id,
            FACT.c.submit_at,
            FACT.c.start_at,
            FACT.c.end_at,
            FACT.c.energy_origin,
            *(FACT.c[name] for name in wanted if name not in ("energy_origin",)),
        )
        .join(CLUSTER, CLUSTER.c.id == FACT.c.cluster_id)
        .where(FACT.c.start_at.is_not(None), FACT.c.start_at < end, FACT.c.end_at >= start)
        .order_by(FACT.c.id)
    )
    rows = list(conn.execute(query).mappings())
    co2e: dict[int, list[dict[str, Any]]] = {}
    ids = [row["id"] for row in rows]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for r in conn.execute(select(CO2E).where(CO2E.c.fact_id.in_(chunk))).mappings():
            co2e.setdefault(r["fact_id"], []).append({c: r[c] for c in CO2E_COLUMNS})
    return [
        StoredFact(
            id=row["id"],
            cluster=row["cluster_name"],
            job_id=row["job_id"],
            submit_at=row["submit_at"],
            start_at=row["start_at"],
            end_at=row["end_at"],
            energy_it_j=row["energy_it_j"],
            energy_origin=row["energy_origin"],
            columns={name: row[name] for name in wanted},
            co2e=tuple(co2e.get(row["id"], ())),
        )
        for row in rows
    ]


def load_lookup(
    conn: Connection,
    settings: Settings,
    facts: Sequence[StoredFact],
    annual: Sequence[AnnualFactor] = (),
) -> InMemoryLookup:
    """The series the facts need (latest versions), read from the warehouse."""
    lookup = InMemoryLookup()
    lookup.add_annual(annual)
    runs = [f for f in facts if f.start_at is not None and f.end_at is not None]
    if not runs:
        return lookup
    margin = timedelta(seconds=settings.carbon.nearest_limit_s)
    lo = min(f.start_at for f in runs if f.start_at) - margin
    hi = max(f.end_at for f in runs if f.end_at) + margin
    carbon = settings.carbon
    zones = {carbon.cluster(f.cluster).zone for f in runs}
    sites = {carbon.cluster(f.cluster).site for f in runs}
    for zone in zones:
        for spec in carbon.series(zone):
            lookup.add(read_intensity(conn, spec.provider, zone, spec.signal, lo, hi))
    for site in sites:
        lookup.add_pue(read_pue(conn, site, lo, hi))
    return lookup


def apply_plan(conn: Connection, plan: RecomputePlan, now: datetime) -> None:
    """Write the plan: footprint columns, CO2e rows, roll-up deltas."""
    for fact_id, columns, co2e in plan.updates:
        conn.execute(FACT.update().where(FACT.c.id == fact_id).values(**columns, updated_at=now))
        conn.execute(CO2E.delete().where(CO2E.c.fact_id == fact_id))
        if co2e:
            conn.execute(CO2E.insert(), [{"fact_id": fact_id, **row} for row in co2e])
    apply_rollups(conn, plan.rollups)

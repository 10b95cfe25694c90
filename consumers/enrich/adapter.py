"""Plugging ``enrich`` into the stream pipeline's seam.

The stream worker keeps ``grid.intensity`` and ``facility.power`` messages as JSON objects
by zone and by site (its ``EnrichmentState``: ``intensity`` and ``power`` mappings). This
module turns such a snapshot into an ``InMemoryLookup`` (once per snapshot) and gives the
``(fact, state) -> fact`` callable the pipeline expects. Messages are the ones
``consumers.enrich.codec`` writes; a PUE point may carry ``pue`` or ``total_power_w`` and
``it_power_w``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import msgspec

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import AnnualFactor, IntensityPoint, PuePoint, SeriesError
from consumers.enrich.stage import ClusterPlan, enrich_planned, plan_for
from jobcarbon.settings import Settings
from schemas.fact import JobFact


class StateLike(Protocol):
    """What the stream worker's state snapshot offers."""

    @property
    def intensity(self) -> Mapping[str, Sequence[Mapping[str, Any]]]: ...

    @property
    def power(self) -> Mapping[str, Sequence[Mapping[str, Any]]]: ...


def intensity_point(doc: Mapping[str, Any]) -> IntensityPoint:
    """An intensity point from a decoded message (SeriesError names the problem)."""
    try:
        point = msgspec.convert(doc, IntensityPoint, strict=False)
    except msgspec.ValidationError as exc:
        raise SeriesError(f"grid.intensity point: {exc}") from None
    if point.start_at.tzinfo is None or point.end_at <= point.start_at:
        raise SeriesError(f"grid.intensity point: bad interval {doc.get('start_at')!r}")
    return point


def pue_point(doc: Mapping[str, Any]) -> PuePoint:
    """A PUE point from a decoded ``facility.power`` message (ratio or total/IT power)."""
    data = dict(doc)
    if data.get("pue") is None:
        total, it = data.get("total_power_w"), data.get("it_power_w")
        if not isinstance(total, int | float) or not isinstance(it, int | float) or it <= 0:
            raise SeriesError(
                f"facility.power point: needs pue or total_power_w/it_power_w, got "
                f"total_power_w={total!r} it_power_w={it!r}"
            )
        data["pue"] = total / it
    fields = {k: data[k] for k in ("site", "start_at", "end_at", "pue", "source") if k in data}
    try:
        point = msgspec.convert(fields, PuePoint, strict=False)
    except msgspec.ValidationError as exc:
        raise SeriesError(f"facility.power point: {exc}") from None
    if point.pue < 1.0 or point.start_at.tzinfo is None or point.end_at <= point.start_at:
        raise SeriesError(f"facility.power point: pue {point.pue!r} or interval is invalid")
    return point


def lookup_from_state(state: StateLike, annual: Sequence[AnnualFactor] = ()) -> InMemoryLookup:
    """An in-memory lookup holding a state snapshot (bad points are skipped: the worker
    validated and counted them when they arrived)."""
    return StateLookup(annual).update(state)


class _Loaded(NamedTuple):
    """One zone's or site's point list as last loaded: the list, its converted points by
    message object, and the series keys (or site) they went to."""

    docs: Sequence[Mapping[str, Any]]
    converted: dict[int, tuple[Mapping[str, Any], IntensityPoint | PuePoint | None]]
    keys: frozenset[Any]


class StateLookup:
    """An ``InMemoryLookup`` kept in step with successive state snapshots.

    The worker's state replaces a zone's or site's point list when a point arrives and never
    mutates one, so a list that is the same object as last time is unchanged: its series and
    the cumulative indexes built on them (``InMemoryLookup.step_index``) are kept. A changed
    list is reloaded (messages already converted are reused), which rebuilds the indexes of
    its series only. The result is the lookup ``lookup_from_state`` builds from scratch.
    """

    def __init__(self, annual: Sequence[AnnualFactor] = ()) -> None:
        self._annual = tuple(annual)
        self.lookup = InMemoryLookup()
        self.lookup.add_annual(self._annual)
        self._zones: dict[str, _Loaded] = {}
        self._sites: dict[str, _Loaded] = {}

    def update(self, state: StateLike) -> InMemoryLookup:
        """The lookup holding ``state``."""
        zones = _reload(self._zones, state.intensity, intensity_point, _series_key)
        sites = _reload(self._sites, state.power, pue_point, _site_key)
        if zones is None or sites is None:  # two lists feed one series: load all in order
            self.lookup = InMemoryLookup()
            self.lookup.add_annual(self._annual)
            self._zones, self._sites = {}, {}
            zones = _reload(self._zones, state.intensity, intensity_point, _series_key, full=True)
            sites = _reload(self._sites, state.power, pue_point, _site_key, full=True)
            assert zones is not None and sites is not None  # a full reload never declines
        dropped, added = zones
        self.lookup.remove(dropped)
        self.lookup.add(p for p in added if isinstance(p, IntensityPoint))
        dropped, added = sites
        self.lookup.remove_pue(dropped)
        self.lookup.add_pue(p for p in added if isinstance(p, PuePoint))
        return self.lookup


def _series_key(point: IntensityPoint | PuePoint) -> Any:
    return (point.provider, point.zone, point.signal) if isinstance(point, IntensityPoint) else ""


def _site_key(point: IntensityPoint | PuePoint) -> Any:
    return point.site if isinstance(point, PuePoint) else ""


def _reload(
    loaded: dict[str, _Loaded],
    lists: Mapping[str, Sequence[Mapping[str, Any]]],
    convert: Callable[[Mapping[str, Any]], IntensityPoint | PuePoint],
    key_of: Callable[[IntensityPoint | PuePoint], Any],
    *,
    full: bool = False,
) -> tuple[set[Any], list[IntensityPoint | PuePoint]] | None:
    """Update ``loaded`` to ``lists``: (series keys to drop, points to add in order), or None
    when a changed list shares a series with another list and not ``full`` (then only a
    full reload, in the state's order, keeps the order in which points revise each other)."""
    changed = [
        name
        for name, docs in lists.items()
        if (name not in loaded or loaded[name].docs is not docs)
    ]
    gone = [name for name in loaded if name not in lists]
    if not changed and not gone:
        return set(), []
    dropped: set[Any] = set()
    added: list[IntensityPoint | PuePoint] = []
    fresh: dict[str, _Loaded] = {}
    for name in changed:
        old = loaded.get(name)
        cache = old.converted if old else {}
        converted: dict[int, tuple[Mapping[str, Any], IntensityPoint | PuePoint | None]] = {}
        points = []
        for doc in lists[name]:
            hit = cache.get(id(doc))
            if hit is None or hit[0] is not doc:
                try:
                    hit = (doc, convert(doc))
                except SeriesError:
                    hit = (doc, None)
            converted[id(doc)] = hit
            if hit[1] is not None:
                points.append(hit[1])
        fresh[name] = _Loaded(lists[name], converted, frozenset(key_of(p) for p in points))
        added.extend(points)
    for name in [*changed, *gone]:
        if name in loaded:
            dropped |= loaded[name].keys
    touched = dropped | {k for entry in fresh.values() for k in entry.keys}
    untouched = [
        entry.keys for name, entry in loaded.items() if name not in fresh and name not in gone
    ]
    if not full and (_shared(fresh) or any(touched & keys for keys in untouched)):
        return None
    for name in gone:
        del loaded[name]
    loaded.update(fresh)
    return dropped, added


def _shared(fresh: Mapping[str, _Loaded]) -> bool:
    seen: set[Any] = set()
    for entry in fresh.values():
        if seen & entry.keys:
            return True
        seen |= entry.keys
    return False


class EnrichStage:
    """The pipeline's enrich stage over the worker's state snapshots.

    One ``StateLookup`` for the stage's life: a new snapshot reloads only the zones and
    sites whose points changed, so the cumulative indexes survive from batch to batch. Each
    cluster's plan (``plan_for``: zone, site, series, their indexes) is made once per
    snapshot, not per job. ``stage(fact, state)`` enriches one fact; ``stage.many(facts,
    state)`` a batch, with one clock reading, each fact's failure returned in its place."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        annual: Sequence[AnnualFactor] = (),
    ) -> None:
        self._carbon = settings.carbon
        self._clock = clock
        self._held = StateLookup(annual)
        self._state: StateLike | None = None  # the snapshot ``_held`` holds
        self._plans: dict[str | None, ClusterPlan] = {}

    def _lookup(self, state: StateLike) -> InMemoryLookup:
        if self._state is not state:
            self._held.update(state)
            self._state = state
            self._plans = {}
        return self._held.lookup

    def _plan(self, cluster: str | None, lookup: InMemoryLookup) -> ClusterPlan:
        plan = self._plans.get(cluster)
        if plan is None:
            plan = self._plans[cluster] = plan_for(self._carbon, cluster, lookup, lookup)
        return plan

    def __call__(self, fact: JobFact, state: StateLike) -> JobFact:
        lookup = self._lookup(state)
        record = fact.record
        if record.start_time is None or record.event == "start":
            return fact
        plan = self._plan(record.cluster, lookup)
        return enrich_planned(fact, plan, lookup, lookup, self._clock())

    def many(self, facts: Sequence[JobFact], state: StateLike) -> list[JobFact | Exception]:
        """Every fact enriched, in order; a fact the stage cannot handle gives its
        exception in its place (the others are not affected)."""
        lookup = self._lookup(state)
        now = self._clock()
        plans = self._plans
        out: list[JobFact | Exception] = []
        for fact in facts:
            record = fact.record
            if record.start_time is None or record.event == "start":
                out.append(fact)
                continue
            # Any exception, not just EnrichError: a bug must not lose the batch.
            try:
                plan = plans.get(record.cluster) or self._plan(record.cluster, lookup)
                out.append(enrich_planned(fact, plan, lookup, lookup, now))
            except Exception as exc:
                out.append(exc)
        return out


def make_stage(
    settings: Settings,
    clock: Callable[[], datetime],
    annual: Sequence[AnnualFactor] = (),
) -> EnrichStage:
    """The pipeline's enrich stage (``EnrichStage``)."""
    return EnrichStage(settings, clock, annual)

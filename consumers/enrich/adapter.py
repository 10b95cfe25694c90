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
from typing import Any, Protocol

import msgspec

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import AnnualFactor, IntensityPoint, PuePoint, SeriesError
from consumers.enrich.stage import enrich
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
    lookup = InMemoryLookup()
    lookup.add_annual(annual)
    for docs in state.intensity.values():
        for doc in docs:
            try:
                lookup.add([intensity_point(doc)])
            except SeriesError:
                continue
    for docs in state.power.values():
        for doc in docs:
            try:
                lookup.add_pue([pue_point(doc)])
            except SeriesError:
                continue
    return lookup


def make_stage(
    settings: Settings,
    clock: Callable[[], datetime],
    annual: Sequence[AnnualFactor] = (),
) -> Callable[[JobFact, StateLike], JobFact]:
    """The pipeline's enrich stage: builds the lookup once per state snapshot."""
    cache: dict[int, tuple[StateLike, InMemoryLookup]] = {}

    def stage(fact: JobFact, state: StateLike) -> JobFact:
        held = cache.get(id(state))
        if held is None or held[0] is not state:
            cache.clear()  # one snapshot per batch: keep only the current one
            held = (state, lookup_from_state(state, annual))
            cache[id(state)] = held
        return enrich(fact, held[1], held[1], settings, clock())

    return stage

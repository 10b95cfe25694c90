"""The stream seam: a state snapshot of topic messages -> lookup -> enrich."""

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.enrich.adapter import (
    StateLookup,
    intensity_point,
    lookup_from_state,
    make_stage,
    pue_point,
)
from consumers.enrich.codec import encode_point
from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint, SeriesError
from consumers.enrich.stage import enrich
from jobcarbon.settings import Settings
from schemas.fact import fact_from_record
from schemas.job import EnergyStatus, JobRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class State:
    intensity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    power: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def test_stage_from_messages() -> None:
    # 1 kWh over 00:00-02:00 at 100 then 300 g/kWh; PUE from power 1200 W / 1000 W = 1.2.
    # factor = 1.2 * (100 + 300) / 2 = 240 -> 240 g.
    msgs = [
        orjson.loads(
            encode_point(
                IntensityPoint(
                    provider="electricitymaps",
                    zone="SE",
                    signal="average",
                    basis="lifecycle",
                    start_at=T0 + timedelta(hours=h),
                    end_at=T0 + timedelta(hours=h + 1),
                    value_g_per_kwh=v,
                )
            )
        )
        for h, v in ((0, 100), (1, 300))
    ]
    msgs.append({"zone": "SE", "start_at": "garbage"})  # skipped, not fatal
    power = [
        {
            "site": "dc",
            "start_at": "2024-01-01T00:00:00Z",
            "end_at": "2024-01-01T02:00:00Z",
            "total_power_w": 1200,
            "it_power_w": 1000,
        }
    ]
    state = State(intensity={"SE": msgs}, power={"dc": power})
    settings = Settings(carbon={"clusters": {"c": {"zone": "SE", "site": "dc"}}})  # type: ignore[arg-type]
    stage = make_stage(settings, lambda: T0)
    record = JobRecord(
        cluster="c",
        job_id=1,
        submit_time=T0,
        start_time=T0,
        end_time=T0 + timedelta(hours=2),
        energy_j=3_600_000,
        energy_status=EnergyStatus.MEASURED,
    )
    out = stage(fact_from_record(record), state)
    acct = out.accounting_estimate
    assert acct is not None and acct.co2e_g == pytest.approx(240)
    assert out.footprint is not None and out.footprint.pue_coverage == 1.0


def test_bad_power_point() -> None:
    with pytest.raises(SeriesError, match="it_power_w"):
        pue_point(
            {
                "site": "dc",
                "start_at": "2024-01-01T00:00:00Z",
                "end_at": "2024-01-01T01:00:00Z",
                "total_power_w": 1,
                "it_power_w": 0,
            }
        )


def doc(zone: str, hour: int, value: float, provider: str = "electricitymaps") -> dict[str, Any]:
    return orjson.loads(
        encode_point(
            IntensityPoint(
                provider=provider,
                zone=zone,
                signal="average",
                basis="lifecycle",
                start_at=T0 + timedelta(hours=hour),
                end_at=T0 + timedelta(hours=hour + 1),
                value_g_per_kwh=value,
            )
        )
    )


def pue_doc(site: str, hour: int, pue: float) -> dict[str, Any]:
    start = T0 + timedelta(hours=hour)
    return {
        "site": site,
        "start_at": start.isoformat(),
        "end_at": (start + timedelta(hours=1)).isoformat(),
        "pue": pue,
    }


def loaded_one_by_one(state: State) -> InMemoryLookup:
    """The lookup as the adapter first built it: every message of every list, in order."""
    lookup = InMemoryLookup()
    for docs in state.intensity.values():
        for d in docs:
            with contextlib.suppress(SeriesError):
                lookup.add([intensity_point(d)])
    for docs in state.power.values():
        for d in docs:
            with contextlib.suppress(SeriesError):
                lookup.add_pue([pue_point(d)])
    return lookup


def contents(lookup: InMemoryLookup) -> tuple[Any, ...]:
    far = (T0 - timedelta(days=9), T0 + timedelta(days=9))
    series = [(p, z) for p in ("electricitymaps", "ukci") for z in ("SE", "FR", "GB")]
    return (
        *(lookup.points(p, z, "average", *far) for p, z in series),
        *(lookup.pue_points(s, *far) for s in ("dc", "dc2")),
    )


def test_state_lookup_follows_snapshots_and_keeps_unchanged_indexes() -> None:
    se = [doc("SE", h, 100 + h) for h in range(48)]
    fr = [doc("FR", h, 50 + h) for h in range(48)]
    dc = [pue_doc("dc", h, 1.1) for h in range(48)]
    held = StateLookup()
    snapshots = [
        State(intensity={"SE": se, "FR": fr}, power={"dc": dc}),
        State(intensity={"SE": se, "FR": fr}, power={"dc": dc}),  # same lists
        State(intensity={"SE": [*se, doc("SE", 48, 7)], "FR": fr}, power={"dc": dc}),  # a point
        State(intensity={"SE": [doc("SE", 0, 999), *se[1:]], "FR": fr}, power={"dc": dc[:10]}),
        State(intensity={"FR": fr, "GB": [doc("GB", 3, 1, "ukci")]}, power={"dc2": dc[:3]}),
        # two lists feeding one series (inconsistent, but must equal a fresh load)
        State(intensity={"FR": fr, "X": [doc("FR", 2, 5), doc("FR", 60, 6)]}, power={}),
        State(intensity={"FR": fr}, power={"dc": dc}),
    ]
    index_fr = None
    for i, state in enumerate(snapshots):
        lookup = held.update(state)
        assert contents(lookup) == contents(loaded_one_by_one(state)), i
        assert contents(lookup_from_state(state)) == contents(lookup), i
        built = lookup.step_index(
            "electricitymaps", "FR", "average", "dc", nearest_s=0, static_pue=1
        )
        if i in (1, 2):  # FR and site dc unchanged since the previous snapshot
            assert built is index_fr
        if i == 3:  # dc changed
            assert built is not index_fr
        index_fr = built


def test_stage_over_successive_snapshots_equals_a_fresh_load() -> None:
    settings = Settings(carbon={"clusters": {"c": {"zone": "SE", "site": "dc"}}})  # type: ignore[arg-type]
    stage = make_stage(settings, lambda: T0)
    se = [doc("SE", h, 100 + 10 * h) for h in range(24)]
    states = [
        State(intensity={"SE": se}, power={"dc": [pue_doc("dc", 1, 1.5)]}),
        State(
            intensity={"SE": [doc("SE", 0, 900), *se[1:]]}, power={"dc": [pue_doc("dc", 1, 1.5)]}
        ),
    ]
    record = JobRecord(cluster="c", job_id=1, submit_time=T0, start_time=T0 + timedelta(minutes=30),
                       end_time=T0 + timedelta(hours=5), energy_j=3_600_000,
                       energy_status=EnergyStatus.MEASURED)  # fmt: skip
    for state in states:
        got = stage(fact_from_record(record), state)
        fresh = loaded_one_by_one(state)
        want = enrich(fact_from_record(record), fresh, fresh, settings, T0)
        assert got == want


def test_batch_form_gives_the_per_record_footprints_and_each_failure_in_its_place() -> None:
    settings = Settings(
        carbon={  # type: ignore[arg-type]
            "clusters": {"c": {"zone": "SE", "site": "dc"}, "d": {"zone": "FR", "site": "dc2"}}
        }
    )
    se = [doc("SE", h, 100 + 10 * h) for h in range(24)]
    fr = [doc("FR", h, 40 + h) for h in range(24)]
    state = State(intensity={"SE": se, "FR": fr}, power={"dc": [pue_doc("dc", 2, 1.4)]})
    facts = []
    for i in range(40):
        start = T0 + timedelta(minutes=17 * i)
        end = start + timedelta(minutes=5 + 23 * (i % 7))
        if i % 9 == 4:
            end = start - timedelta(minutes=1)  # ends before it starts: EnrichError
        record = JobRecord(cluster=("c", "d", "elsewhere")[i % 3], job_id=i, submit_time=start,
                           start_time=None if i % 11 == 5 else start, end_time=end,
                           energy_j=None if i % 4 == 1 else 1000 * i,
                           energy_status=EnergyStatus.MISSING if i % 4 == 1
                           else EnergyStatus.MEASURED)  # fmt: skip
        facts.append(fact_from_record(record))
    clock = [T0 + timedelta(days=1)]
    one = make_stage(settings, lambda: clock[0])
    many = make_stage(settings, lambda: clock[0])

    def per_record(fact: Any) -> Any:
        try:
            return one(fact, state)
        except Exception as exc:
            return exc

    want = [per_record(f) for f in facts]
    got = many.many(facts, state)
    assert len(got) == len(facts)
    failed = [i for i, w in enumerate(want) if isinstance(w, Exception)]
    assert failed and failed == [i for i, g in enumerate(got) if isinstance(g, Exception)]
    assert [str(g) for g in got if isinstance(g, Exception)] == [str(want[i]) for i in failed]
    assert [g for g in got if not isinstance(g, Exception)] == [
        w for w in want if not isinstance(w, Exception)
    ]
    # The same as the pure stage over a lookup loaded from scratch, fact by fact.
    fresh = loaded_one_by_one(state)
    for fact, g in zip(facts, got, strict=True):
        if not isinstance(g, Exception):
            assert g == enrich(fact, fresh, fresh, settings, clock[0])
    # A new snapshot with a revised point: the plans follow it.
    revised = State(intensity={"SE": [doc("SE", 0, 900), *se[1:]], "FR": fr}, power={})
    fresh = loaded_one_by_one(revised)
    for fact, g in zip(facts, many.many(facts, revised), strict=True):
        if not isinstance(g, Exception):
            assert g == enrich(fact, fresh, fresh, settings, clock[0])

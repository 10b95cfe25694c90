"""In-memory lookup: windows, revisions, annual fallbacks."""

from datetime import UTC, datetime, timedelta

import msgspec

from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import AnnualFactor, IntensityPoint, PuePoint
from consumers.enrich.prefix import StepIndex, micros

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def point(hour: int, value: float) -> IntensityPoint:
    return IntensityPoint(
        provider="p",
        zone="Z",
        signal="average",
        basis=None,
        start_at=T0 + timedelta(hours=hour),
        end_at=T0 + timedelta(hours=hour + 1),
        value_g_per_kwh=value,
    )


def test_window_includes_the_point_overlapping_its_start() -> None:
    lk = InMemoryLookup()
    lk.add([point(2, 3), point(0, 1), point(1, 2)])
    got = lk.points("p", "Z", "average", T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    assert [p.value_g_per_kwh for p in got] == [1, 2]
    assert lk.points("p", "Z", "marginal", T0, T0 + timedelta(hours=3)) == []


def test_revision_replaces_the_value() -> None:
    lk = InMemoryLookup()
    lk.add([point(0, 1), point(0, 5)])
    assert [p.value_g_per_kwh for p in lk.points("p", "Z", "average", T0, T0 + timedelta(1))] == [5]


def test_annual_picks_year_then_earlier_then_undated() -> None:
    lk = InMemoryLookup()
    lk.add_annual(
        [
            AnnualFactor(provider="o", zone="FRA", year=y, value_g_per_kwh=v)
            for y, v in ((2020, 50), (2022, 40))
        ]
    )
    assert lk.annual("FRA", 2022).value_g_per_kwh == 40  # type: ignore[union-attr]
    assert lk.annual("FRA", 2025).value_g_per_kwh == 40  # type: ignore[union-attr]
    assert lk.annual("FRA", 2021).value_g_per_kwh == 50  # type: ignore[union-attr]
    assert lk.annual("FRA", 2010).value_g_per_kwh == 50  # type: ignore[union-attr]
    lk.add_annual([AnnualFactor(provider="s", zone="FRA", year=None, value_g_per_kwh=60)])
    assert lk.annual("FRA", 2010).value_g_per_kwh == 60  # type: ignore[union-attr]
    assert lk.annual("XX", 2010) is None


def test_step_index_is_cached_and_rebuilt_after_a_change() -> None:
    lk = InMemoryLookup()
    lk.add([point(0, 100), point(1, 200)])

    def index() -> StepIndex:
        built = lk.step_index("p", "Z", "average", "s", nearest_s=0.0, static_pue=1.5)
        assert built is not None
        return built

    def factor(built: StepIndex) -> float:
        # the first hour: intensity x PUE
        return built.integrate(micros(T0), micros(T0 + timedelta(hours=1)), 475, "default")[0]

    first = index()
    assert index() is first and factor(first) == 150
    lk.add([point(0, 120)])  # a revision
    assert factor(index()) == 180
    lk.add_pue([PuePoint(site="s", start_at=T0, end_at=T0 + timedelta(hours=1), pue=1.25)])
    assert factor(index()) == 150
    lk.add([point(0, 60), point(0, 50)])  # revision of a revision
    assert factor(index()) == 62.5
    # a two-hour point overlapping the next one: only the general path can resolve that
    lk.add([msgspec.structs.replace(point(0, 1), end_at=T0 + timedelta(hours=2))])
    assert lk.step_index("p", "Z", "average", "s", nearest_s=0.0, static_pue=1.5) is None

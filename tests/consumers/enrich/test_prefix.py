"""The cumulative index (``consumers.enrich.prefix``) against the sweep (``integrate``): the
same integration, field by field, on hand-computed and random series."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from consumers.enrich import prefix
from consumers.enrich.integrate import Integration, integrate
from consumers.enrich.model import IntensityPoint, PuePoint

T0 = datetime(2024, 1, 1, tzinfo=UTC)
REL = 1e-12


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def us(when: datetime) -> int:
    return prefix.micros(when)


def point(start_min: float, end_min: float, value: float, **kw: object) -> IntensityPoint:
    fields = {"basis": "lifecycle", "is_estimated": False, **kw}
    return IntensityPoint(
        provider="p",
        zone="Z",
        signal="average",
        start_at=at(start_min),
        end_at=at(end_min),
        value_g_per_kwh=value,
        **fields,  # type: ignore[arg-type]
    )


def pue(start_min: float, end_min: float, value: float) -> PuePoint:
    return PuePoint(site="s", start_at=at(start_min), end_at=at(end_min), pue=value)


def same(got: Integration, want: Integration) -> None:
    for name in ("factor_g_per_kwh_it", "intensity_g_per_kwh", "coverage", "estimated_share",
                 "pue_factor", "pue_coverage"):  # fmt: skip
        assert math.isclose(getattr(got, name), getattr(want, name), rel_tol=REL, abs_tol=1e-15), (
            name,
            got,
            want,
        )
    assert got.fallback == want.fallback
    assert got.fallback_shares.keys() == want.fallback_shares.keys()
    for kind, share in want.fallback_shares.items():
        assert math.isclose(got.fallback_shares[kind], share, rel_tol=REL)


def test_job_across_boundaries_by_hand() -> None:
    # 10:30-12:15 over hourly 100, 200, 400 and PUE 1.2 until 11:00 then 1.5:
    # intensity (30*100 + 60*200 + 15*400)/105 = 200;
    # PUE-weighted (30*100*1.2 + 60*200*1.5 + 15*400*1.5)/105 = 30600/105 = 291.43;
    # PUE (30*1.2 + 75*1.5)/105 = 1.414.
    points = [point(600, 660, 100), point(660, 720, 200), point(720, 780, 400)]
    pues = [pue(0, 660, 1.2), pue(660, 900, 1.5)]
    index = prefix.build(points, pues, nearest_s=7200, static_pue=1.0)
    assert index is not None
    r = index.integrate(us(at(630)), us(at(735)), 475.0, "default")
    assert r.intensity_g_per_kwh == pytest.approx(200)
    assert r.factor_g_per_kwh_it == pytest.approx((30 * 120 + 60 * 300 + 15 * 600) / 105)
    assert r.pue_factor == pytest.approx((30 * 1.2 + 75 * 1.5) / 105)
    assert (r.coverage, r.estimated_share, r.fallback, r.pue_coverage) == (1.0, 0.0, None, 1.0)


def test_gap_filled_by_nearest_then_annual() -> None:
    # Points 00-01 (100) and 05-06 (300); nearest limit 1 h; job 00:30-03:30.
    # 00:30-01:00 real 100, 01:00-02:00 nearest 100, 02:00-03:30 annual 50 (03:30 is more
    # than 1 h from 05:00): intensity (30*100 + 60*100 + 90*50) / 180 = 75.
    points = [point(0, 60, 100), point(300, 360, 300)]
    index = prefix.build(points, [], nearest_s=3600, static_pue=1.25)
    assert index is not None
    r = index.integrate(us(at(30)), us(at(210)), 50.0, "annual")
    assert r.intensity_g_per_kwh == pytest.approx(75)
    assert r.factor_g_per_kwh_it == pytest.approx(75 * 1.25)
    assert r.coverage == pytest.approx(30 / 180)
    assert r.fallback == "annual"
    assert r.fallback_shares == pytest.approx({"nearest": 60 / 180, "annual": 90 / 180})


def test_overlapping_points_have_no_index() -> None:
    assert prefix.build([point(0, 60, 1), point(30, 90, 2)], [], nearest_s=0, static_pue=1) is None
    assert prefix.build([], [pue(0, 60, 1.1), pue(59, 90, 1.2)], nearest_s=0, static_pue=1) is None


def test_absurd_nearest_limit_takes_the_sweep() -> None:
    # 200 years of nearest limit: times from the index origin would pass 2**53 microseconds
    assert prefix.build([point(0, 60, 1)], [], nearest_s=200 * 365 * 86400, static_pue=1) is None


def test_no_points_at_all() -> None:
    index = prefix.build([], [], nearest_s=7200, static_pue=1.4)
    assert index is not None
    r = index.integrate(us(T0), us(at(90)), 475.0, "default")
    assert (r.intensity_g_per_kwh, r.pue_factor, r.coverage, r.fallback) == (
        475.0,
        1.4,
        0.0,
        "default",
    )
    assert r.factor_g_per_kwh_it == pytest.approx(475 * 1.4)
    assert index.basis(us(T0), us(at(90))) is None


def random_series(rng: random.Random, days: int) -> tuple[list[IntensityPoint], list[PuePoint]]:
    step = rng.choice((15, 30, 60))
    points = []
    basis = "lifecycle"
    for i in range(days * 24 * 60 // step):
        if rng.random() < 0.15:  # gaps, some long enough for the annual/default fallback
            continue
        if rng.random() < 0.05:
            basis = "direct" if basis == "lifecycle" else "lifecycle"
        points.append(
            point(i * step, (i + 1) * step, rng.uniform(0, 800),
                  is_estimated=rng.random() < 0.2, basis=basis)
        )  # fmt: skip
    if rng.random() < 0.3:  # a hole of many hours
        cut = rng.randrange(len(points))
        points = points[:cut] + points[cut + rng.randrange(5, 40) :]
    pues = [
        pue(i * 30, (i + 1) * 30, rng.uniform(1.0, 1.6))
        for i in range(days * 48)
        if rng.random() > 0.1
    ]
    return points, pues


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_the_sweep_on_random_series(seed: int) -> None:
    rng = random.Random(seed)
    points, pues = random_series(rng, days=4)
    nearest_s = rng.choice((0.0, 900.0, 7200.0, 1800.5))
    static = rng.uniform(1.0, 1.5)
    index = prefix.build(points, pues, nearest_s=nearest_s, static_pue=static)
    assert index is not None
    edges = [p.start_at for p in points] + [q.end_at for q in pues]
    for _ in range(150):
        on_edge = rng.random() < 0.3
        start = rng.choice(edges) if on_edge else at(rng.uniform(-600, 4 * 1440 + 600))
        start = start.replace(microsecond=rng.choice((0, start.microsecond)))
        length = rng.choice((0.0, 1e-6, 1.0, 59.0, rng.uniform(1, 48 * 3600)))
        end = start + timedelta(seconds=length)
        annual = rng.choice((None, 123.0))
        fallback = (annual, "annual") if annual is not None else (475.0, "default")
        got = index.integrate(us(start), us(end), *fallback)
        kw = {
            "default_g_per_kwh": 475.0,
            "annual_g_per_kwh": annual,
            "nearest_limit": timedelta(seconds=nearest_s),
            "static_pue": static,
        }
        same(got, integrate(start, end, points, pue_points=pues, **kw))  # type: ignore[arg-type]
        near = timedelta(seconds=nearest_s)
        # the stage's window: a zero-length run still sees the point starting at it
        window_end = max(end, start + timedelta(seconds=1)) + near
        window = [p for p in points if p.end_at > start - near and p.start_at < window_end]
        same(got, integrate(start, end, window, pue_points=pues, **kw))  # type: ignore[arg-type]
        bases = {p.basis for p in points if p.start_at < end and p.end_at > start}
        assert index.basis(us(start), us(end)) == (bases.pop() if len(bases) == 1 else None)


def test_short_job_late_in_a_long_series_keeps_precision() -> None:
    # A year of hourly points: cumulative totals reach ~1e15 us x g/kWh; a 90 s job across one
    # boundary near the end must still match the sweep to float rounding.
    rng = random.Random(3)
    points = [point(60 * h, 60 * h + 60, rng.uniform(50, 700)) for h in range(24 * 365)]
    index = prefix.build(points, [], nearest_s=7200, static_pue=1.1)
    assert index is not None
    for h in (10, 4000, 24 * 365 - 3):
        start = at(60 * h + 59.5)
        end = start + timedelta(seconds=90)
        same(
            index.integrate(us(start), us(end), 475.0, "default"),
            integrate(start, end, points, default_g_per_kwh=475, static_pue=1.1),
        )
        start, end = at(60 * h + 0.25), at(60 * h + 180.75)  # two whole hours inside
        same(
            index.integrate(us(start), us(end), 475.0, "default"),
            integrate(start, end, points, default_g_per_kwh=475, static_pue=1.1),
        )

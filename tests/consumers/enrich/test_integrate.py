"""Hand-computed integration cases (every expected number is worked out in the comment)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.enrich.integrate import integrate
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.parsers import rte, ukci
from consumers.enrich.profile import PhaseProfile

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def hourly(*values: float | None, estimated: tuple[int, ...] = ()) -> list[IntensityPoint]:
    return [
        IntensityPoint(
            provider="p",
            zone="Z",
            signal="average",
            basis="lifecycle",
            start_at=at(60 * i),
            end_at=at(60 * (i + 1)),
            value_g_per_kwh=v,
            is_estimated=i in estimated,
        )
        for i, v in enumerate(values)
        if v is not None
    ]


def test_job_across_hour_boundaries() -> None:
    # 10:30-12:15 over hourly 100 (10h), 200 (11h), 400 (12h): shares 30/105, 60/105, 15/105.
    # intensity = (30*100 + 60*200 + 15*400) / 105 = 21000/105 = 200; PUE 1.5 -> factor 300.
    points = [
        IntensityPoint(
            provider="p",
            zone="Z",
            signal="average",
            basis=None,
            start_at=at(60 * h),
            end_at=at(60 * h + 60),
            value_g_per_kwh=v,
        )
        for h, v in ((10, 100), (11, 200), (12, 400), (9, 999), (13, 999))
    ]
    r = integrate(at(630), at(735), points, default_g_per_kwh=475, static_pue=1.5)
    assert r.intensity_g_per_kwh == pytest.approx(200)
    assert r.factor_g_per_kwh_it == pytest.approx(300)
    assert (r.coverage, r.estimated_share, r.fallback, r.pue_factor, r.pue_coverage) == (
        1.0,
        0.0,
        None,
        1.5,
        0.0,
    )


def test_half_hour_intervals_with_an_estimated_point(carbon_data: Path) -> None:
    # UK national: 12:00-12:30 actual 263, 12:30-13:00 forecast 270 (estimated).
    # Run 12:15-12:45: half each -> (263 + 270) / 2 = 266.5; estimated share 0.5.
    points = ukci.parse((carbon_data / "ukci_national.json").read_bytes()).strict()
    start = datetime(2018, 1, 20, 12, 15, tzinfo=UTC)
    r = integrate(start, start + timedelta(minutes=30), points, default_g_per_kwh=475)
    assert r.intensity_g_per_kwh == pytest.approx(266.5)
    assert (r.coverage, r.estimated_share) == (1.0, 0.5)


def test_daylight_saving_change_in_local_time_source(carbon_data: Path) -> None:
    # RTE 2025-10-26: 02:45+02:00 (= 00:45Z) 20 g/kWh, then 02:00+01:00 (= 01:00Z) 24 g/kWh,
    # 15-minute values. The job runs 02:50+02:00 -> 02:10+01:00 local (wall clock goes back),
    # i.e. 00:50Z-01:10Z: 10 min at 20 and 10 min at 24 -> 22.
    points = rte.parse_json((carbon_data / "rte_v21.json").read_bytes()).points
    start = datetime.fromisoformat("2025-10-26T02:50:00+02:00")
    end = datetime.fromisoformat("2025-10-26T02:10:00+01:00")
    r = integrate(start, end, points, default_g_per_kwh=475)
    assert r.intensity_g_per_kwh == pytest.approx(22)
    assert r.coverage == 1.0


def test_missing_intervals_fall_back_in_order() -> None:
    # Hourly 100 (0h) and 400 (3h); 1h-3h missing; run 0h-4h; nearest limit 30 min.
    # [1h,1.5h) nearest 100, [2.5h,3h) nearest 400, [1.5h,2.5h) annual 250:
    # (1*100 + .5*100 + 1*250 + .5*400 + 1*400) / 4 = 1000/4 = 250; coverage 2/4.
    points = hourly(100, None, None, 400)
    r = integrate(
        at(0),
        at(240),
        points,
        default_g_per_kwh=475,
        annual_g_per_kwh=250,
        nearest_limit=timedelta(minutes=30),
    )
    assert r.intensity_g_per_kwh == pytest.approx(250)
    assert r.coverage == 0.5 and r.fallback == "annual"
    assert r.fallback_shares == {"nearest": 0.25, "annual": 0.25}
    # No annual value: the default 475 instead: (100 + 50 + 475 + 200 + 400) / 4 = 306.25.
    r = integrate(
        at(0), at(240), points, default_g_per_kwh=475, nearest_limit=timedelta(minutes=30)
    )
    assert r.intensity_g_per_kwh == pytest.approx(306.25) and r.fallback == "default"


def test_nearest_splits_a_gap_at_its_midpoint() -> None:
    # 100 ends at 1h, 400 starts at 2h, limit 2h: [1h,1.5h) -> 100, [1.5h,2h) -> 400.
    # Run 0-3h: (100 + 50 + 200 + 400) / 3 = 250.
    r = integrate(
        at(0),
        at(180),
        hourly(100, None, 400),
        default_g_per_kwh=475,
        nearest_limit=timedelta(hours=2),
    )
    assert r.intensity_g_per_kwh == pytest.approx(250) and r.fallback == "nearest"


def test_no_points_at_all_uses_default_and_says_so() -> None:
    r = integrate(at(0), at(60), [], default_g_per_kwh=475)
    assert (r.intensity_g_per_kwh, r.coverage, r.fallback) == (475, 0.0, "default")


def test_time_varying_pue() -> None:
    # Intensity 100 (0h), 300 (1h). PUE measured 1.2 over 0-1h, 1.5 over 1h-1.5h, gap to 2h
    # takes the static 1.1. Run 0-2h:
    # factor = (1*1.2*100 + .5*1.5*300 + .5*1.1*300) / 2 = (120 + 225 + 165) / 2 = 255
    # pue_factor = (1.2 + .75 + .55) / 2 = 1.25; intensity 200; pue coverage 0.75.
    pue = [
        PuePoint(site="s", start_at=at(0), end_at=at(60), pue=1.2),
        PuePoint(site="s", start_at=at(60), end_at=at(90), pue=1.5),
    ]
    r = integrate(
        at(0), at(120), hourly(100, 300), default_g_per_kwh=475, static_pue=1.1, pue_points=pue
    )
    assert r.factor_g_per_kwh_it == pytest.approx(255)
    assert r.pue_factor == pytest.approx(1.25) and r.pue_coverage == pytest.approx(0.75)
    assert r.intensity_g_per_kwh == pytest.approx(200)


def test_phase_profile() -> None:
    # 2 h run: startup 30 min at 100 W, work 400 W, a 15-min checkpoint at 200 W after every
    # 30 min of work: [0,30) 100, [30,60) 400, [60,75) 200, [75,105) 400, [105,120) 200.
    # Energy (W.min): hour 0 = 3000 + 12000 = 15000; hour 1 = 3000 + 12000 + 3000 = 18000.
    # Intensity 100 then 300: (15000*100 + 18000*300) / 33000 = 6.9e6 / 33000 = 2300/11.
    profile = PhaseProfile(
        startup_s=1800,
        startup_power_w=100,
        work_power_w=400,
        checkpoint_every_s=1800,
        checkpoint_s=900,
        checkpoint_power_w=200,
    )
    pieces = profile.pieces(7200)
    assert [(p.start_s / 60, p.end_s / 60, p.power_w) for p in pieces] == [
        (0, 30, 100),
        (30, 60, 400),
        (60, 75, 200),
        (75, 105, 400),
        (105, 120, 200),
    ]
    r = integrate(at(0), at(120), hourly(100, 300), default_g_per_kwh=475, profile=profile)
    assert r.intensity_g_per_kwh == pytest.approx(2300 / 11)


def test_zero_length_run_takes_values_at_start() -> None:
    r = integrate(at(90), at(90), hourly(100, 300), default_g_per_kwh=475)
    assert r.intensity_g_per_kwh == pytest.approx(300) and r.coverage == 1.0


def test_end_before_start_and_zero_energy_profile_are_errors() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        integrate(at(10), at(0), [], default_g_per_kwh=475)
    with pytest.raises(ValueError, match="no energy"):
        integrate(at(0), at(10), [], default_g_per_kwh=475, profile=PhaseProfile(work_power_w=0))


def test_matches_a_per_second_sum_on_random_series() -> None:
    # Runs start and end on whole seconds, so summing intensity x PUE over every second is
    # exact; the piecewise integration must agree to rounding.
    import bisect
    import random

    rng = random.Random(7)
    points = [
        IntensityPoint(
            provider="p",
            zone="Z",
            signal="average",
            basis=None,
            start_at=at(60 * h),
            end_at=at(60 * h + 60),
            value_g_per_kwh=rng.uniform(50, 800),
        )
        for h in range(6)
    ]
    pue = [
        PuePoint(site="s", start_at=at(20 * i), end_at=at(20 * i + 20), pue=rng.uniform(1.0, 1.5))
        for i in range(18)
    ]
    starts, pue_starts = [p.start_at for p in points], [q.start_at for q in pue]
    for _ in range(8):
        a = at(rng.randrange(0, 4 * 3600) / 60)
        b = a + timedelta(seconds=rng.randrange(1, 3600))
        total, t, n = 0.0, a, 0
        while t < b:
            i = bisect.bisect_right(starts, t) - 1
            j = bisect.bisect_right(pue_starts, t) - 1
            total += points[i].value_g_per_kwh * pue[j].pue
            t += timedelta(seconds=1)
            n += 1
        r = integrate(a, b, points, default_g_per_kwh=475, pue_points=pue)
        assert r.factor_g_per_kwh_it == pytest.approx(total / n, rel=1e-9)

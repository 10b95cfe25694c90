"""bench/enrich: the enrich stage on synthetic jobs over a month of hourly intensity and
half-hourly measured PUE, vs a naive per-minute sampling baseline in the same run.

The baseline samples intensity x PUE at every minute of the run (what a simple
implementation does); the exact integration cuts the run at series boundaries only. The
ratio is exact-integration jobs/s over baseline jobs/s; the largest relative difference of
the results is printed too (the baseline is only exact when runs start on whole minutes).
Run: ``python -m bench.enrich [--jobs N]``.
"""

from __future__ import annotations

import argparse
import bisect
import random
import time
from datetime import UTC, datetime, timedelta

from consumers.enrich.integrate import integrate
from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.stage import enrich
from jobcarbon.settings import Settings
from schemas.fact import fact_from_record
from schemas.job import EnergyStatus, JobRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def series(days: int, rng: random.Random) -> tuple[list[IntensityPoint], list[PuePoint]]:
    points = [
        IntensityPoint(provider="electricitymaps", zone="DE", signal="average", basis="lifecycle",
                       start_at=T0 + timedelta(hours=h), end_at=T0 + timedelta(hours=h + 1),
                       value_g_per_kwh=rng.uniform(100, 700))
        for h in range(24 * days)
    ]  # fmt: skip
    pue = [
        PuePoint(site="dc", start_at=T0 + timedelta(minutes=30 * i),
                 end_at=T0 + timedelta(minutes=30 * (i + 1)), pue=rng.uniform(1.05, 1.4))
        for i in range(48 * days)
    ]  # fmt: skip
    return points, pue


def naive(
    start: datetime, end: datetime, points: list[IntensityPoint], pue: list[PuePoint]
) -> float:
    starts = [p.start_at for p in points]
    pstarts = [p.start_at for p in pue]
    total = n = 0.0
    t = start
    while t < end:
        i = bisect.bisect_right(starts, t) - 1
        j = bisect.bisect_right(pstarts, t) - 1
        total += points[i].value_g_per_kwh * pue[j].pue
        n += 1
        t += timedelta(minutes=1)
    return total / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(1)
    points, pue = series(31, rng)
    runs = []
    for _ in range(args.jobs):
        start = T0 + timedelta(seconds=rng.randrange(0, 25 * 86400))
        runs.append((start, start + timedelta(seconds=rng.randrange(60, 48 * 3600))))

    t = time.perf_counter()
    slow = [naive(a, b, points, pue) for a, b in runs]
    base_s = time.perf_counter() - t

    t = time.perf_counter()
    exact = [
        integrate(a, b, [p for p in points if p.end_at > a and p.start_at < b],
                  default_g_per_kwh=475,
                  pue_points=[q for q in pue if q.end_at > a and q.start_at < b],
                  ).factor_g_per_kwh_it
        for a, b in runs
    ]  # fmt: skip
    exact_s = time.perf_counter() - t

    lookup = InMemoryLookup()
    lookup.add(points)
    lookup.add_pue(pue)
    settings = Settings(carbon={"clusters": {"c": {"zone": "DE", "site": "dc"}}})  # type: ignore[arg-type]
    facts = [
        fact_from_record(JobRecord(cluster="c", job_id=i, submit_time=a, start_time=a, end_time=b,
                                   energy_j=3_600_000, energy_status=EnergyStatus.MEASURED))
        for i, (a, b) in enumerate(runs)
    ]  # fmt: skip
    t = time.perf_counter()
    for f in facts:
        enrich(f, lookup, lookup, settings, T0)
    stage_s = time.perf_counter() - t

    diff = max(abs(x - y) / x for x, y in zip(exact, slow, strict=True))
    mean_h = sum((b - a).total_seconds() for a, b in runs) / len(runs) / 3600
    print(f"jobs: {len(runs)} (mean run {mean_h:.1f} h; hourly intensity, half-hourly PUE)")
    print(f"naive per-minute baseline : {len(runs) / base_s:10,.0f} jobs/s")
    print(
        f"exact integrate           : {len(runs) / exact_s:10,.0f} jobs/s  "
        f"ratio to baseline {base_s / exact_s:.1f}"
    )
    print(
        f"enrich stage (lookup+all) : {len(runs) / stage_s:10,.0f} jobs/s  "
        f"ratio to baseline {base_s / stage_s:.1f}"
    )
    print(f"largest relative difference exact vs per-minute: {diff:.2e}")


if __name__ == "__main__":
    main()

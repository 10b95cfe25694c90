"""bench/enrich: the enrich stage, exact, vs a naive per-minute sampling baseline in the same run.

Two workloads:

* ``runs`` (issue 5's): 2000 random runs of 1 min to 48 h (mean 24 h) over 31 days of hourly
  intensity and half-hourly measured PUE: the sweep ``integrate`` per run, and the whole stage
  (``enrich`` over an ``InMemoryLookup``: cumulative index, two bisects per run).
* ``stream`` (issue 4's): synthetic jobs (``jobcarbon.synth``: realistic runtimes, cancelled
  and pending ones included) rendered as Slurm sends them and normalized, enriched by the
  pipeline's stage (``consumers.enrich.adapter.make_stage``) over the worker's state as the
  sink agent sees it: JSON points as ``grid.intensity`` / ``facility.power`` deliver them
  (intensity hourly, then half-hourly; PUE half-hourly with gaps; the last 1500 points per
  zone or site, as the worker keeps them), a new snapshot every 1000 facts. Compared with the
  same stage forced onto the sweep (what it did before the index) and with the baseline.

The baseline samples intensity x PUE at every minute of the run (what a simple implementation
does); it is measured on a sample of the jobs (it takes ~5 ms per day of run). Every path
prints jobs/s (wall clock), CPU microseconds per job (``time.process_time``, much less
sensitive to a loaded machine) and its ratio to the baseline (CPU time per job); the largest
relative difference between the index and the sweep is printed too (exactness).
Run: ``python -m bench.enrich [--jobs N] [--stream-jobs N]``.
"""

from __future__ import annotations

import argparse
import bisect
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

from consumers.enrich import prefix
from consumers.enrich.adapter import lookup_from_state, make_stage
from consumers.enrich.codec import encode_point
from consumers.enrich.integrate import integrate
from consumers.enrich.lookup import InMemoryLookup
from consumers.enrich.model import IntensityPoint, PuePoint
from consumers.enrich.stage import enrich
from consumers.ingest import normalize_bytes
from consumers.state import MAX_POINTS, EnrichmentState
from jobcarbon.settings import Settings
from jobcarbon.synth import choose_versions, generate_jobs, kafka_key_and_headers, render
from schemas.fact import JobFact, fact_from_record
from schemas.job import EnergyStatus, JobRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 1000  # facts per state snapshot (the sink agent's default batch)
R = TypeVar("R")


class Timed:
    """Wall-clock and CPU seconds of one measured path."""

    def __init__(self, label: str, jobs: int, wall_s: float, cpu_s: float) -> None:
        self.label, self.jobs, self.wall_s, self.cpu_s = label, jobs, wall_s, cpu_s

    @property
    def cpu_us_per_job(self) -> float:
        return self.cpu_s / self.jobs * 1e6

    def line(self, baseline: Timed | None) -> str:
        text = (
            f"  {self.label:<34}: {self.jobs / self.wall_s:10,.0f} jobs/s  "
            f"{self.cpu_us_per_job:9.1f} us CPU/job"
        )
        if baseline is not None:
            text += f"  ratio to baseline {baseline.cpu_us_per_job / self.cpu_us_per_job:7.1f}"
        return text


REPEAT = 3  # every path runs this many times; the fastest run counts (set by --repeat)


def timed(label: str, jobs: int, work: Callable[[], R]) -> tuple[R, Timed]:
    """``work()`` run ``REPEAT`` times: its result and the best wall and CPU times."""
    best_wall = best_cpu = float("inf")
    for _ in range(REPEAT):
        wall, cpu = time.perf_counter(), time.process_time()
        out = work()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return out, Timed(label, jobs, best_wall, best_cpu)


def series(
    start: datetime, days: int, rng: random.Random, *, step_min: int = 60, zone: str = "DE",
    site: str = "dc", pue_gaps: float = 0.0,
) -> tuple[list[IntensityPoint], list[PuePoint]]:  # fmt: skip
    """Intensity every ``step_min`` minutes and half-hourly PUE (a share missing)."""
    points = [
        IntensityPoint(provider="electricitymaps", zone=zone, signal="average", basis="lifecycle",
                       start_at=start + timedelta(minutes=step_min * i),
                       end_at=start + timedelta(minutes=step_min * (i + 1)),
                       value_g_per_kwh=rng.uniform(100, 700))
        for i in range(days * 24 * 60 // step_min)
    ]  # fmt: skip
    pue = [
        PuePoint(site=site, start_at=start + timedelta(minutes=30 * i),
                 end_at=start + timedelta(minutes=30 * (i + 1)), pue=rng.uniform(1.05, 1.4))
        for i in range(48 * days)
        if rng.random() >= pue_gaps
    ]  # fmt: skip
    return points, pue


def naive(
    start: datetime, end: datetime, points: Sequence[IntensityPoint], pue: Sequence[PuePoint],
    default: float = 475.0, static_pue: float = 1.0,
) -> float:  # fmt: skip
    """Intensity x PUE sampled at each minute of the run (at least once)."""
    starts = [p.start_at for p in points]
    pstarts = [p.start_at for p in pue]
    total = n = 0.0
    t = start
    while n == 0 or t < end:
        i = bisect.bisect_right(starts, t) - 1
        j = bisect.bisect_right(pstarts, t) - 1
        value = points[i].value_g_per_kwh if i >= 0 and points[i].end_at > t else default
        factor = pue[j].pue if j >= 0 and pue[j].end_at > t else static_pue
        total += value * factor
        n += 1
        t += timedelta(minutes=1)
    return total / n


def largest_difference(a: Iterable[float | None], b: Iterable[float | None]) -> float:
    return max(
        (abs(x - y) / abs(y) for x, y in zip(a, b, strict=True) if x is not None and y),
        default=0.0,
    )


def accounting_factors(facts: Iterable[JobFact]) -> list[float | None]:
    return [e.factor_g_per_kwh_it if (e := f.accounting_estimate) else None for f in facts]


class SweepOnly:
    """A lookup the stage cannot index: it takes the sweep (the stage before the index)."""

    def __init__(self, inner: InMemoryLookup) -> None:
        self.inner = inner

    def points(self, *args: Any) -> Any:
        return self.inner.points(*args)

    def annual(self, zone: str, year: int) -> Any:
        return self.inner.annual(zone, year)

    def pue_points(self, *args: Any) -> Any:
        return self.inner.pue_points(*args)


def runs_workload(n_jobs: int, sample: int) -> None:
    rng = random.Random(1)
    points, pue = series(T0, 31, rng)
    runs = []
    for _ in range(n_jobs):
        start = T0 + timedelta(seconds=rng.randrange(0, 25 * 86400))
        runs.append((start, start + timedelta(seconds=rng.randrange(60, 48 * 3600))))
    mean_h = sum((b - a).total_seconds() for a, b in runs) / len(runs) / 3600
    print(f"runs: {len(runs)} jobs (mean run {mean_h:.1f} h; hourly intensity, half-hourly PUE)")
    some = runs[:sample]
    slow, base = timed(
        f"per-minute baseline ({len(some)} jobs)", len(some),
        lambda: [naive(a, b, points, pue) for a, b in some],
    )  # fmt: skip
    print(base.line(None))
    exact, sweep = timed(
        "exact integrate (sweep per run)", len(runs),
        lambda: [
            integrate(a, b, [p for p in points if p.end_at > a and p.start_at < b],
                      default_g_per_kwh=475,
                      pue_points=[q for q in pue if q.end_at > a and q.start_at < b],
                      ).factor_g_per_kwh_it
            for a, b in runs
        ],
    )  # fmt: skip
    print(sweep.line(base))
    lookup = InMemoryLookup()
    lookup.add(points)
    lookup.add_pue(pue)
    settings = Settings(carbon={"clusters": {"c": {"zone": "DE", "site": "dc"}}})  # type: ignore[arg-type]
    facts = [
        fact_from_record(JobRecord(cluster="c", job_id=i, submit_time=a, start_time=a, end_time=b,
                                   energy_j=3_600_000, energy_status=EnergyStatus.MEASURED))
        for i, (a, b) in enumerate(runs)
    ]  # fmt: skip
    _, built = timed(
        "index build", 1, lambda: prefix.build(points, pue, nearest_s=7200, static_pue=1.56)
    )
    print(f"  index build (once per change of the series): {built.cpu_s * 1e3:.1f} ms CPU")
    out, stage = timed(
        "enrich stage (index, all fields)", len(facts),
        lambda: [enrich(f, lookup, lookup, settings, T0) for f in facts],
    )  # fmt: skip
    print(stage.line(base))
    print(
        f"  largest relative difference: stage vs sweep "
        f"{largest_difference(accounting_factors(out), exact):.1e}; sweep vs per-minute "
        f"{largest_difference(exact[: len(slow)], slow):.1e}"
    )


def stream_facts(n_jobs: int) -> list[JobFact]:
    """Synthetic jobs as the sink agent gets them: rendered, normalized, made facts."""
    jobs = generate_jobs(n_jobs, seed=7, days=20)
    facts = []
    for job, version in zip(jobs, choose_versions(len(jobs), "mix", 7), strict=True):
        key, headers = kafka_key_and_headers(job, version)
        record = normalize_bytes(render(job, version), key=key, headers=dict(headers))
        if isinstance(record, JobRecord):
            facts.append(fact_from_record(record))
    return facts


def stream_workload(n_jobs: int, sample: int) -> None:
    facts = stream_facts(n_jobs)
    runs = [(f.record.start_time, f.record.end_time) for f in facts]
    ran = [(a, b) for a, b in runs if a is not None and b is not None and b >= a]
    first = min(a for a, _ in ran)
    last = max(b for _, b in ran)
    days = (last - first).days + 3
    hours = sorted((b - a).total_seconds() / 3600 for a, b in ran)
    print(
        f"stream: {len(facts)} synthetic jobs ({len(facts) - len(ran)} never ran), runs "
        f"median {hours[len(hours) // 2]:.2f} h, mean {sum(hours) / len(hours):.1f} h, "
        f"max {hours[-1]:.0f} h, over {days} days"
    )
    settings = Settings(
        carbon={"clusters": {"alps": {"zone": "CH", "site": "cscs"}},  # type: ignore[arg-type]
                "sites": {"cscs": {"pue": 1.3, "pue_source": "bench"}}}
    )  # fmt: skip
    rng = random.Random(2)
    for step in (60, 30):
        points, pue = series(
            first.replace(minute=0, second=0, microsecond=0) - timedelta(days=1), days, rng,
            step_min=step, zone="CH", site="cscs", pue_gaps=0.05,
        )  # fmt: skip
        # What the worker holds: the newest MAX_POINTS messages per zone and per site.
        state = EnrichmentState(
            intensity={"CH": [orjson.loads(encode_point(p)) for p in points[-MAX_POINTS:]]},
            power={"cscs": [orjson.loads(encode_point(q)) for q in pue[-MAX_POINTS:]]},
        )
        print(f" intensity every {step} min ({len(state.intensity['CH'])} points), PUE "
              f"half-hourly ({len(state.power['cscs'])} points, 5 % missing)")  # fmt: skip
        stream_case(facts, ran[:sample], settings, state)


def stream_case(
    facts: list[JobFact],
    some: list[tuple[datetime, datetime]],
    settings: Settings,
    state: EnrichmentState,
) -> None:
    lookup = lookup_from_state(state)
    far = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    points = lookup.points("electricitymaps", "CH", "average", *far)
    pue = lookup.pue_points("cscs", *far)
    _, base = timed(
        f"per-minute baseline ({len(some)} jobs)", len(some),
        lambda: [naive(a, b, points, pue, static_pue=1.3) for a, b in some],
    )  # fmt: skip
    print(base.line(None))

    def snapshots() -> Iterable[tuple[list[JobFact], EnrichmentState]]:
        # A new snapshot object per batch, as LocalState.snapshot() gives the sink agent.
        for i in range(0, len(facts), BATCH):
            yield facts[i : i + BATCH], EnrichmentState(state.intensity, state.power)

    def sweep_path() -> list[JobFact]:
        out: list[JobFact] = []
        for batch, snapshot in snapshots():
            sweep = SweepOnly(lookup_from_state(snapshot))
            out.extend(enrich(f, sweep, sweep, settings, T0) for f in batch)
        return out

    def stage_path() -> list[JobFact]:
        stage = make_stage(settings, lambda: T0)
        return [stage(f, snapshot) for batch, snapshot in snapshots() for f in batch]

    def build() -> None:
        lookup_from_state(state).step_index(
            "electricitymaps", "CH", "average", "cscs", nearest_s=7200.0, static_pue=1.3
        )

    _, built = timed("index build", 1, build)
    print(f"  state load + index build (once per change of a series): "
          f"{built.cpu_s * 1e3:.1f} ms CPU, included in the stage below")  # fmt: skip
    slow, sweep = timed("stage on the sweep (before)", len(facts), sweep_path)
    print(sweep.line(base))
    fast, stage = timed("pipeline stage (index)", len(facts), stage_path)
    print(stage.line(base))
    print(
        f"  index vs sweep: {sweep.cpu_us_per_job / stage.cpu_us_per_job:.1f}x less CPU; "
        f"largest relative difference "
        f"{largest_difference(accounting_factors(fast), accounting_factors(slow)):.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="runs workload (issue 5)")
    parser.add_argument("--stream-jobs", type=int, default=20000, help="stream workload")
    parser.add_argument("--sample", type=int, default=300, help="jobs the baseline samples")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (best counts)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    runs_workload(args.jobs, args.sample)
    stream_workload(args.stream_jobs, args.sample)


if __name__ == "__main__":
    main()

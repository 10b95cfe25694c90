"""bench/normalize: 100k synthetic records through the normalizer vs a json.loads baseline.

Both run in the same process on the same bytes, interleaved over several rounds, so the
ratio is meaningful on a noisy machine. Besides wall-clock rates it prints the CPU time per
record (``time.process_time``), which a loaded machine disturbs much less.
Run: ``python -m bench.normalize [--jobs N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from consumers.ingest import normalize_bytes
from jobcarbon.synth import choose_versions, generate_jobs, render

TARGET_PER_S = 50_000


def _best(fn: Callable[[bytes], object], values: list[bytes]) -> tuple[float, float]:
    """(wall, cpu) seconds of one pass of ``fn`` over ``values``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for value in values:
        fn(value)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slurm-version", default="mix")
    args = parser.parse_args()

    jobs = generate_jobs(args.jobs, seed=1)
    values = [
        render(j, v)
        for j, v in zip(jobs, choose_versions(len(jobs), args.slurm_version, 1), strict=True)
    ]
    mean_bytes = sum(map(len, values)) / len(values)

    def baseline(value: bytes) -> object:
        return json.loads(value.rstrip(b"\x00"))

    def pipeline(value: bytes) -> object:
        return normalize_bytes(value)

    def pipeline_json(value: bytes) -> object:
        record = normalize_bytes(value)
        return record.to_json() if hasattr(record, "to_json") else record

    paths = {
        "json.loads baseline": baseline,
        "normalize_bytes": pipeline,
        "normalize + JSON output": pipeline_json,
    }
    best = {name: (float("inf"), float("inf")) for name in paths}
    for _ in range(args.rounds):  # interleaved: load changes hit every path alike
        for name, fn in paths.items():
            wall, cpu = _best(fn, values)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))

    n = len(values)
    base_wall, base_cpu = best["json.loads baseline"]
    print(f"records: {n} ({args.slurm_version} layouts, mean {mean_bytes:.0f} bytes)")
    print(f"{'path':24s} {'records/s':>10s} {'ratio':>6s} {'CPU us/rec':>11s} {'CPU ratio':>10s}")
    for name, (wall, cpu) in best.items():
        print(
            f"{name:24s} {n / wall:10,.0f} {base_wall / wall:6.2f} "
            f"{cpu / n * 1e6:11.2f} {base_cpu / cpu:10.2f}"
        )
    norm_wall, norm_cpu = best["normalize_bytes"]
    print(
        f"target {TARGET_PER_S:,} records/s on one core: wall {n / norm_wall:,.0f}/s "
        f"({'meets' if n / norm_wall >= TARGET_PER_S else 'below'}), "
        f"CPU {n / norm_cpu:,.0f}/s ({'meets' if n / norm_cpu >= TARGET_PER_S else 'below'})"
    )


if __name__ == "__main__":
    main()

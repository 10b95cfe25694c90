"""bench/normalize: 100k synthetic records through the normalizer vs a json.loads baseline.

Both run in the same process on the same bytes, interleaved over several rounds, so the
ratio is meaningful on a noisy machine. Run: ``python -m bench.normalize [--jobs N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from consumers.ingest import normalize_bytes
from jobcarbon.synth import choose_versions, generate_jobs, render

TARGET_PER_S = 50_000


def _best_rate(fn: Callable[[bytes], object], values: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for value in values:
            fn(value)
        best = min(best, time.perf_counter() - start)
    return len(values) / best


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

    base = _best_rate(baseline, values, args.rounds)
    norm = _best_rate(pipeline, values, args.rounds)
    norm_json = _best_rate(pipeline_json, values, args.rounds)
    print(f"records: {len(values)} ({args.slurm_version} layouts, mean {mean_bytes:.0f} bytes)")
    print(f"json.loads baseline      : {base:10,.0f} records/s")
    print(
        f"normalize_bytes          : {norm:10,.0f} records/s  ratio to baseline {norm / base:.2f}"
    )
    print(
        f"normalize + JSON output  : {norm_json:10,.0f} records/s  "
        f"ratio to baseline {norm_json / base:.2f}"
    )
    verdict = "meets" if norm >= TARGET_PER_S else "below"
    print(f"target {TARGET_PER_S:,} records/s on one core: {verdict}")


if __name__ == "__main__":
    main()

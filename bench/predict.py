"""bench/predict: prediction error on held-out synthetic history vs a per-partition mean.

The synthetic history (jobcarbon.synth) is split in time: the first 80 % of jobs (by end)
are the warehouse, the last 20 % are new submissions. For each held-out job with a usable
energy, the request (user, account, partition, nodes, cpus, gpus, time limit, job name) is
predicted from the history the credit API would fetch (the user's, the account's and the
partition's most recent jobs) and compared with the job's true energy. The baseline predicts
the mean energy of the partition's past jobs. Run: ``python -m bench.predict [--jobs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from jobcarbon.credit.predict import JobRequest, PastJob, predict, usable
from jobcarbon.synth import SynthJob, generate_jobs

RECENT = 200  # per user / account / partition, as the API's history query


def past_job(job: SynthJob) -> PastJob:
    """A synthetic job as the warehouse would hold it (slurmdbd energy, may be bogus)."""
    return PastJob(
        user=job.user.name,
        account=job.account,
        partition=job.partition,
        job_name=job.job_name,
        nodes=len(job.nodes),
        cpus=job.cpus,
        time_limit_s=job.time_limit_s,
        elapsed_s=job.elapsed_s,
        energy_it_j=float(job.energy_db_j or 0),
        shared=not job.exclusive,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    jobs = generate_jobs(args.jobs, seed=args.seed)
    cut = int(len(jobs) * 0.8)
    train = [past_job(j) for j in jobs[:cut]]
    by_user: dict[tuple[str, str], list[PastJob]] = defaultdict(list)
    by_account: dict[tuple[str, str], list[PastJob]] = defaultdict(list)
    by_partition: dict[str, list[PastJob]] = defaultdict(list)
    for p in train:
        by_user[(p.user, p.partition)].append(p)
        by_account[(p.account, p.partition)].append(p)
        by_partition[p.partition].append(p)
    baseline = {
        name: statistics.fmean(p.energy_it_j for p in rows if usable(p))
        for name, rows in by_partition.items()
    }

    ape_model: list[float] = []
    ape_base: list[float] = []
    completed: list[tuple[float, float]] = []  # failed/cancelled runs are unpredictable
    inside_band = 0
    started = time.perf_counter()
    for job in jobs[cut:]:
        truth = past_job(job)
        if not usable(truth) or not job.nodes:
            continue
        request = JobRequest(
            user=truth.user,
            account=truth.account,
            partition=truth.partition,
            nodes=truth.nodes,
            cpus=truth.cpus,
            gpus=job.gpus,
            time_limit_s=truth.time_limit_s,
            job_name=truth.job_name,
        )
        history = (
            by_user[(truth.user, truth.partition)][-RECENT:]
            + by_account[(truth.account, truth.partition)][-RECENT:]
            + by_partition[truth.partition][-RECENT:]
        )
        pred = predict(request, history)
        ape_model.append(abs(pred.energy_it_j - truth.energy_it_j) / truth.energy_it_j)
        ape_base.append(abs(baseline[truth.partition] - truth.energy_it_j) / truth.energy_it_j)
        if job.state == "COMPLETED":
            completed.append((ape_model[-1], ape_base[-1]))
        inside_band += pred.energy_low_j <= truth.energy_it_j <= pred.energy_high_j
    elapsed = time.perf_counter() - started

    n = len(ape_model)
    mape_model, mape_base = statistics.fmean(ape_model), statistics.fmean(ape_base)
    print(f"held-out jobs with usable energy: {n} (train {cut}), {n / elapsed:,.0f} predictions/s")
    print(f"MAPE   model {mape_model * 100:8.1f} %   per-partition mean {mape_base * 100:8.1f} %")
    print(
        f"MdAPE  model {statistics.median(ape_model) * 100:8.1f} %   "
        f"per-partition mean {statistics.median(ape_base) * 100:8.1f} %"
    )
    print(
        f"MAPE on COMPLETED jobs ({len(completed)}): model "
        f"{statistics.fmean(m for m, _ in completed) * 100:.1f} %   per-partition mean "
        f"{statistics.fmean(b for _, b in completed) * 100:.1f} %"
    )
    print(f"truth inside the p10-p90 band: {inside_band / n * 100:.1f} %")
    print(f"ratio (baseline MAPE / model MAPE): {mape_base / mape_model:.2f}x")


if __name__ == "__main__":
    main()

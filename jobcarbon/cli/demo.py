"""``jobcarbon demo``: the pipeline on the embedded default, ending with a footprint table.

First version (Foundation issue): synthetic records -> normalize -> per-user and per-account
energy. Later issues route it through the broker, workers and the warehouse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import click

from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.cli.common import format_table
from jobcarbon.synth import choose_versions, generate_jobs, render
from schemas.job import EnergyStatus, JobRecord

J_PER_KWH = 3_600_000.0


def energy_table(records: Iterable[JobRecord], by: str, top: int = 10) -> list[list[object]]:
    """Rows of (name, jobs, measured jobs, energy kWh, share of jobs without energy)."""
    jobs: dict[str, int] = defaultdict(int)
    measured: dict[str, int] = defaultdict(int)
    energy_j: dict[str, int] = defaultdict(int)
    for record in records:
        name = getattr(record, by) or "(none)"
        jobs[name] += 1
        if record.energy_status is EnergyStatus.MEASURED and record.energy_j is not None:
            measured[name] += 1
            energy_j[name] += record.energy_j
    ranked = sorted(jobs, key=lambda n: (-energy_j[n], n))[:top]
    return [
        [n, jobs[n], measured[n], energy_j[n] / J_PER_KWH, 1 - measured[n] / jobs[n]]
        for n in ranked
    ]


@click.command()
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--slurm-version", default="mix", show_default=True)
def demo(n_jobs: int, seed: int, slurm_version: str) -> None:
    """Synthesize a day of jobs, normalize them, and print the energy by user and account."""
    jobs = generate_jobs(n_jobs, seed)
    versions = choose_versions(len(jobs), slurm_version, seed)
    records: list[JobRecord] = []
    rejected = 0
    for job, version in zip(jobs, versions, strict=True):
        result = normalize_bytes(render(job, version))
        if isinstance(result, Rejection):
            rejected += 1
        else:
            records.append(result)
    click.echo(f"{len(records)} jobs normalized, {rejected} rejected\n")
    headers = ["{}", "jobs", "with energy", "energy kWh", "no-energy share"]
    for by in ("user", "account"):
        click.echo(f"Top {by}s by energy")
        click.echo(format_table([headers[0].format(by), *headers[1:]], energy_table(records, by)))
        click.echo()

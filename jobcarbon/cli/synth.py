"""``jobcarbon synth``: deterministic synthetic raw jobcomp records, one per line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from jobcarbon.synth import DEFAULT_START, VERSIONS, choose_versions, generate_jobs, render


def _parse_start(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.option("--jobs", "n_jobs", type=click.IntRange(min=0), required=True, help="Job runs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cluster", default="alps", show_default=True)
@click.option(
    "--slurm-version",
    type=click.Choice(["mix", *VERSIONS]),
    default="24.11",
    show_default=True,
    help="Record layout to write; 'mix' draws a realistic version per job.",
)
@click.option(
    "--start",
    default=DEFAULT_START.isoformat(),
    show_default=True,
    help="Start of the submission window (UTC).",
)
@click.option(
    "--days",
    type=click.FloatRange(min=0.001),
    default=None,
    help="Length of the submission window (default: ~75 % machine load).",
)
@click.option(
    "--start-events",
    is_flag=True,
    help="Also write 25.05+ job-start records (for 25.05/26.05 layouts).",
)
@click.option("--output", "-o", type=click.File("wb"), default="-", help="Output file.")
def synth(
    n_jobs: int,
    seed: int,
    cluster: str,
    slurm_version: str,
    start: str,
    days: float | None,
    start_events: bool,
    output: click.utils.LazyFile,
) -> None:
    """Write realistic raw jobcomp records: skewed users and accounts, CPU/GPU/shared
    partitions, arrays, het jobs, failures, missing and invalid energy."""
    jobs = generate_jobs(n_jobs, seed, cluster=cluster, start=_parse_start(start), days=days)
    versions = choose_versions(len(jobs), slurm_version, seed)
    records: list[tuple[datetime, int, bytes]] = []
    for job, version in zip(jobs, versions, strict=True):
        records.append((job.end, 1, render(job, version)))
        if start_events and version in ("25.05", "26.05") and job.start and job.nodes:
            records.append((job.start, 0, render(job, version, event="start")))
    if start_events:
        records.sort(key=lambda r: (r[0], r[1]))
    for _, _, value in records:
        output.write(value + b"\n")
    output.flush()
    if output is not sys.stdout.buffer:
        click.echo(f"wrote {len(records)} record(s) for {len(jobs)} job(s)", err=True)

"""``jobcarbon demo``: the pipeline on the embedded default, ending with a footprint table.

Starts the embedded broker (tansu), stream workers and a SQLite warehouse in a temporary
directory, produces synthetic jobcomp records as Slurm would, waits until the warehouse holds
every finished job, prints energy and CO2e by user and account from the warehouse, and stops
everything again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

import click
from sqlalchemy import Engine, text

from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.cli.common import format_table, settings_from
from jobcarbon.synth import choose_versions, generate_jobs, kafka_key_and_headers, render

J_PER_KWH = 3_600_000.0
_SELECT: Final = """
    SELECT d.name, count(*) AS jobs, count(f.energy_it_j) AS measured,
           coalesce(sum(f.energy_it_j), 0) AS energy_j, sum(f.co2e_g) AS co2e_g
    FROM fact_job f JOIN {dim} d ON d.id = f.{column}
    GROUP BY d.name ORDER BY energy_j DESC, d.name LIMIT :top
"""
#: Footprint query per grouping: fixed SQL (only ``top`` is a parameter, bound).
_QUERIES: Final = {
    "user": _SELECT.replace("{dim}", "dim_user").replace("{column}", "user_id"),
    "account": _SELECT.replace("{dim}", "dim_account").replace("{column}", "account_id"),
}


def footprint_table(engine: Engine, by: str, top: int = 10) -> list[list[object]]:
    """Rows of (name, jobs, jobs with energy, energy kWh, CO2e kg, no-energy share)."""
    with engine.connect() as conn:
        rows = conn.execute(text(_QUERIES[by]), {"top": top}).all()
    return [
        [
            name,
            jobs,
            measured,
            energy_j / J_PER_KWH,
            None if co2e_g is None else co2e_g / 1000,
            1 - measured / jobs,
        ]
        for name, jobs, measured, energy_j, co2e_g in rows
    ]


def expected_jobs(values: Iterable[bytes]) -> int:
    """Finished jobs (distinct natural keys) the warehouse should end up holding."""
    keys = set()
    for value in values:
        record = normalize_bytes(value)
        if not isinstance(record, Rejection) and record.event in ("end", "energy_update"):
            keys.add(record.key)
    return len(keys)


@click.command()
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--slurm-version", default="mix", show_default=True)
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=110.0, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context, n_jobs: int, seed: int, slurm_version: str, workers: int, timeout_s: float
) -> None:
    """Broker + workers + SQLite warehouse on synthetic jobs; prints the footprint tables."""
    from consumers.kafka.producer import Producer
    from consumers.stream.local import local_stack
    from warehouse.engine import make_engine

    started = time.monotonic()
    jobs = generate_jobs(n_jobs, seed)
    versions = choose_versions(len(jobs), slurm_version, seed)
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for job, version in zip(jobs, versions, strict=True):
        key, patch_headers = kafka_key_and_headers(job, version)
        messages.append((key, render(job, version), patch_headers))
    want = expected_jobs(value for _, value, _ in messages)

    settings = settings_from(ctx)
    with local_stack(settings, workers=workers) as stack:
        kafka = stack.settings.kafka
        click.echo(
            f"broker {kafka.bootstrap_servers}, {workers} worker(s), warehouse "
            f"{stack.settings.warehouse.url}",
            err=True,
        )
        producer = Producer(kafka)
        for key, value, patch_headers in messages:
            producer.produce(kafka.topic_jobcomp, value, key=key, headers=patch_headers)
        report = producer.flush()
        del producer  # disconnect before the broker stops
        click.echo(f"{report.delivered} raw record(s) produced to {kafka.topic_jobcomp}", err=True)

        engine = make_engine(stack.settings.warehouse.url)
        landed = 0
        while landed < want:
            stack.check_workers()
            if time.monotonic() - started > timeout_s:
                raise click.ClickException(
                    f"only {landed} of {want} jobs landed after {timeout_s:.0f} s "
                    f"(worker logs in {stack.workdir})"
                )
            time.sleep(0.5)
            with engine.connect() as conn:
                landed = int(conn.execute(text("SELECT count(*) FROM fact_job")).scalar_one())
        elapsed = time.monotonic() - started
        click.echo(f"{landed} jobs in the warehouse after {elapsed:.1f} s\n")
        headers_row = ["{}", "jobs", "with energy", "energy kWh", "CO2e kg", "no-energy share"]
        for by in ("user", "account"):
            click.echo(f"Top {by}s by energy")
            click.echo(
                format_table(
                    [headers_row[0].format(by), *headers_row[1:]], footprint_table(engine, by)
                )
            )
            click.echo()
        engine.dispose()

"""``jobcarbon demo``: the whole pipeline on the embedded default, ending with the footprint.

1. A synthetic day of jobs and its machine room (meters with a drifting node meter and a
   node whose Slurm energy counter reads high), so Slurm's records carry that bias.
2. The embedded broker (tansu), stream workers and a SQLite warehouse in a temporary
   directory; real Electricity Maps intensity for zone DE (shipped with jobcarbon) is
   published to ``grid.intensity`` and stored in the warehouse.
3. The records are produced as Slurm's jobcomp/kafka would send them; the workers ingest,
   enrich and land them.
4. Reconciliation against a local accounting source: ``sacct --json`` output of the same
   jobs (slurmdbd's final energies) through the real sacct parser.
5. A validation report of Slurm energy against the machine-room meters, from the warehouse.
6. The footprint tables, and where the report is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Final

import click
from sqlalchemy import Engine, text

from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.cli.common import format_table, settings_from
from jobcarbon.settings import ClusterSettings, Settings, SiteSettings
from jobcarbon.synth import SynthJob, choose_versions, generate_jobs, kafka_key_and_headers, render

DEMO_ZONE: Final = "DE"
DEMO_SITE: Final = "demo-room"
#: The synthetic machine room's facility/IT ratio (warehouse.reports.machine_room default).
DEMO_PUE: Final = 1.3
INTENSITY_FILE: Final = "electricitymaps_history_DE_2024-03-05.json"

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


def demo_settings(settings: Settings, cluster: str) -> Settings:
    """The demo's cluster runs in zone DE, in a site whose PUE is the machine room's."""
    carbon = settings.carbon.model_copy(
        update={
            "clusters": {cluster: ClusterSettings(zone=DEMO_ZONE, site=DEMO_SITE)},
            "sites": {
                **settings.carbon.sites,
                DEMO_SITE: SiteSettings(pue=DEMO_PUE, pue_source="demo machine room"),
            },
        }
    )
    return settings.model_copy(update={"carbon": carbon})


def load_intensity(settings: Settings) -> int:
    """Publish the shipped DE intensity to grid.intensity and store it (versioned)."""
    from consumers.enrich.codec import encode_point, intensity_key
    from consumers.enrich.parsers.electricitymaps import parse
    from consumers.kafka.producer import Producer
    from warehouse.engine import make_engine
    from warehouse.series_store import write_intensity

    payload = resources.files("jobcarbon.data").joinpath(INTENSITY_FILE).read_bytes()
    points = parse(payload, datetime.now(UTC)).points
    producer = Producer(settings.kafka)
    for point in points:
        producer.produce(
            settings.kafka.topic_intensity, encode_point(point), key=intensity_key(point)
        )
    producer.flush()
    engine = make_engine(settings.warehouse.url)
    try:
        with engine.begin() as conn:
            write_intensity(conn, points, datetime.now(UTC), f"file:{INTENSITY_FILE}")
    finally:
        engine.dispose()
    return len(points)


def validation_report(settings: Settings, room: object, jobs: list[SynthJob], out: Path) -> Path:
    """Slurm energy (as landed in the warehouse) against the machine-room meters."""
    from warehouse.engine import make_engine
    from warehouse.reports.machine_room import MachineRoom
    from warehouse.reports.report import build_validation_report
    from warehouse.reports.source import job_energies_from_warehouse

    assert isinstance(room, MachineRoom)
    start = min(j.start for j in jobs if j.start is not None).replace(minute=0, second=0)
    end = max(j.end for j in jobs) + timedelta(hours=1)
    engine = make_engine(settings.warehouse.url)
    try:
        energies, issues = job_energies_from_warehouse(engine, start, end)
    finally:
        engine.dispose()
    summary = build_validation_report(
        energies,
        room.meters,
        room.mapping,
        start,
        end,
        out,
        extra_issues=issues,
        title="jobcarbon demo: Slurm energy vs machine-room meters",
    )
    return summary.html_path


@click.command()
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--slurm-version", default="mix", show_default=True)
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=150.0, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="Where the validation report goes.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    n_jobs: int,
    seed: int,
    slurm_version: str,
    workers: int,
    timeout_s: float,
    out: str,
) -> None:
    """The whole pipeline on the embedded default (broker, workers, SQLite warehouse, real
    intensity, reconciliation, validation report); prints the footprint tables."""
    from consumers.kafka.producer import Producer
    from consumers.stream.local import local_stack
    from jobcarbon.cli.reconcile import reconcile
    from jobcarbon.synth.sacct import sacct_json
    from warehouse.engine import make_engine
    from warehouse.reports.machine_room import build_machine_room

    started = time.monotonic()
    room = build_machine_room(generate_jobs(n_jobs, seed), seed=seed, pue=DEMO_PUE)
    jobs = room.jobs  # as Slurm reports them: one node's counter reads high
    versions = choose_versions(len(jobs), slurm_version, seed)
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for job, version in zip(jobs, versions, strict=True):
        key, patch_headers = kafka_key_and_headers(job, version)
        messages.append((key, render(job, version), patch_headers))
    want = expected_jobs(value for _, value, _ in messages)

    settings = demo_settings(settings_from(ctx), jobs[0].cluster)
    with local_stack(settings, workers=workers) as stack:
        kafka = stack.settings.kafka
        click.echo(
            f"broker {kafka.bootstrap_servers}, {workers} worker(s), warehouse "
            f"{stack.settings.warehouse.url}",
            err=True,
        )
        n_points = load_intensity(stack.settings)
        click.echo(f"{n_points} real intensity points for zone {DEMO_ZONE} published", err=True)
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
        click.echo(f"{landed} jobs in the warehouse after {elapsed:.1f} s", err=True)

        sacct = stack.workdir / "sacct.json"
        sacct.write_bytes(sacct_json(jobs))
        click.echo("reconciling with the accounting source (sacct --json of the same jobs):")
        ctx.invoke(
            reconcile,
            since=min(j.submit for j in jobs).isoformat(),
            until=None,
            db_url=stack.settings.warehouse.url,
            accounting_url=None,
            sacct_json=str(sacct),
            sacct_psv=None,
            limit=10 * len(jobs),
            gap_clusters=(),
        )
        report_path = validation_report(stack.settings, room, jobs, Path(out) / "validation")
        click.echo()
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
        click.echo(f"Validation report: {report_path.resolve()}")

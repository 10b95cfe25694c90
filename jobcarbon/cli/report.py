"""``jobcarbon report``: the validation report (Slurm energy against machine-room meters).

``validate`` reads jobs (normalized JSON lines) and meter files and writes the report;
``synth-meters`` writes a synthetic machine room and its jobs for the demo and for trying it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from jobcarbon.cli.common import open_input, read_lines


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def report() -> None:
    """Validation report: Slurm job energy against node, rack and facility meters."""


@report.command()
@click.option("--from", "start", required=True, help="Window start (ISO 8601; UTC if naive).")
@click.option("--to", "end", required=True, help="Window end (ISO 8601; UTC if naive).")
@click.option(
    "--meters",
    "meters_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Meter samples, CSV or Parquet (columns: warehouse/reports/meters.py). "
    "Default with --db: the warehouse's ts_meter_reading.",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(dir_okay=False, exists=True),
    help="node,rack,room[,partition] CSV or Parquet. Without it every node is 'unknown'.",
)
@click.option(
    "--jobs",
    "jobs_path",
    type=click.Path(dir_okay=False, allow_dash=True, exists=True),
    help="Normalized job records, JSON lines (jobcarbon normalize output; - for stdin).",
)
@click.option("--db", "db_url", help="Warehouse URL: read jobs from fact_job instead of --jobs.")
@click.option("--interval", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@click.option(
    "--assume-tz",
    default="UTC",
    show_default=True,
    help="Time zone of meter timestamps without an offset (reported as a conversion).",
)
@click.option("--title", help="Report title.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
def validate(
    start: str,
    end: str,
    meters_path: str,
    mapping_path: str | None,
    jobs_path: str | None,
    db_url: str | None,
    interval: str,
    assume_tz: str,
    title: str | None,
    out_dir: str,
) -> None:
    """Compare Slurm job energy with meters over [--from, --to]; write report.html,
    summary.json and CSV tables into --out."""
    import pandas as pd
    from sqlalchemy.exc import SQLAlchemyError

    from warehouse.reports.jobs import job_energies_from_lines
    from warehouse.reports.mapping import NodeMap, parse_mapping, read_mapping_table
    from warehouse.reports.meters import parse_meters, read_meter_table
    from warehouse.reports.quality import QualityIssue
    from warehouse.reports.report import build_validation_report

    start_at, end_at = _parse_time(start), _parse_time(end)
    if end_at <= start_at:
        raise click.BadParameter(f"--to {end!r} is not after --from {start!r}")
    if (jobs_path is None) == (db_url is None):
        raise click.UsageError("give either --jobs FILE (normalized JSON lines) or --db URL")
    if meters_path is None and db_url is None:
        raise click.UsageError("give --meters FILE (or --db URL to read ts_meter_reading)")
    extra: list[QualityIssue] = []
    meter_table: pd.DataFrame | None = None
    mapping_table: pd.DataFrame | None = None
    try:
        if meters_path is not None:
            meter_table = read_meter_table(meters_path)
            mapping_table = read_mapping_table(mapping_path) if mapping_path else None
        if db_url is not None:
            from warehouse.engine import make_engine
            from warehouse.reports.source import job_energies_from_warehouse, meters_from_warehouse

            engine = make_engine(db_url)
            try:
                jobs, job_issues = job_energies_from_warehouse(engine, start_at, end_at)
                if meters_path is None:
                    meter_table, db_mapping = meters_from_warehouse(engine, start_at, end_at)
                    mapping_table = read_mapping_table(mapping_path) if mapping_path else db_mapping
            finally:
                engine.dispose()
        else:
            assert jobs_path is not None
            with open_input(jobs_path) as stream:
                jobs, job_issues = job_energies_from_lines(read_lines(stream), (start_at, end_at))
        assert meter_table is not None
        meters = parse_meters(meter_table, assume_tz=assume_tz)
        node_map = parse_mapping(mapping_table) if mapping_table is not None else NodeMap({})
    except (ValueError, KeyError) as exc:
        raise click.UsageError(f"{exc}") from exc
    except SQLAlchemyError as exc:
        raise click.ClickException(f"warehouse: {type(exc).__name__}: {exc}") from exc
    if not node_map.nodes:
        extra.append(QualityIssue(kind="mapping", subject="mapping", detail="no mapping given"))
    result = build_validation_report(
        jobs,
        meters,
        node_map,
        start_at,
        end_at,
        Path(out_dir),
        interval="day" if interval == "day" else "hour",
        extra_issues=[*extra, *job_issues],
        title=title,
    )
    s = result.summary
    flagged = ", ".join(f"{f['node']} ({f['flag']})" for f in s["nodes"]["flagged"]) or "none"
    click.echo(
        f"report: {result.html_path}\n"
        f"jobs {s['jobs'].get('jobs', 0)} (compared {s['jobs'].get('comparable', 0)}), "
        f"Slurm/meter {_fmt(s['jobs'].get('ratio'))}, MAPE {_fmt(s['jobs'].get('mape'))}; "
        f"flagged nodes: {flagged}",
        err=True,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@report.command("synth-meters")
@click.option("--jobs", "n_jobs", type=click.IntRange(min=10), default=2_500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--slurm-bias", type=float, default=0.08, show_default=True)
@click.option("--drift-per-day", type=float, default=0.03, show_default=True)
@click.option("--pue", type=click.FloatRange(min=1.0), default=1.3, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
def synth_meters(
    n_jobs: int,
    seed: int,
    slurm_bias: float,
    drift_per_day: float,
    pue: float,
    fmt: str,
    out_dir: str,
) -> None:
    """Write a synthetic machine room: jobs.jsonl (normalized records, with the biased Slurm
    energies), meters.csv|parquet, mapping.csv and truth.json (what was injected)."""
    from jobcarbon.synth import generate_jobs
    from warehouse.reports.machine_room import build_machine_room, job_records

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    room = build_machine_room(
        generate_jobs(n_jobs, seed),
        seed=seed,
        slurm_bias=slurm_bias,
        drift_per_day=drift_per_day,
        pue=pue,
    )
    with (out / "jobs.jsonl").open("wb") as f:
        for record in job_records(room.jobs):
            f.write(record.to_json() + b"\n")
    meters_path = out / f"meters.{fmt}"
    if fmt == "parquet":
        room.meters.to_parquet(meters_path, engine="pyarrow", index=False)
    else:
        room.meters.to_csv(meters_path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    room.mapping.to_csv(out / "mapping.csv", index=False)
    t = room.truth
    truth = {
        "start_at": t.start_at.isoformat(),
        "end_at": t.end_at.isoformat(),
        "biased_node": t.biased_node,
        "slurm_bias": t.slurm_bias,
        "drift_node": t.drift_node,
        "drift_per_day": t.drift_per_day,
        "pue": t.pue,
        "noise_sd": t.noise_sd,
        "sample_period_s": t.sample_period_s,
        "gaps": [[n, a.isoformat(), b.isoformat()] for n, a, b in t.gaps],
        "pdu_wraps": t.pdu_wraps,
        "pdu_reset": [t.pdu_reset[0], t.pdu_reset[1].isoformat()] if t.pdu_reset else None,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    click.echo(
        f"wrote {len(room.jobs)} job(s), {len(room.meters)} meter row(s) to {out}; "
        f"window {t.start_at.isoformat()} .. {t.end_at.isoformat()}",
        err=True,
    )

"""``jobcarbon backfill``: load raw jobcomp history into the warehouse without Kafka."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

import click
from tqdm import tqdm

from consumers import pipeline
from consumers.ingest import Rejection
from consumers.state import EnrichmentState
from jobcarbon.cli.common import open_input, read_lines, settings_from
from schemas.fact import JobFact


def _batches(
    lines: Iterator[bytes],
    state: EnrichmentState,
    stages: pipeline.Stages,
    default_cluster: str | None,
    size: int,
) -> Iterator[tuple[list[JobFact], list[Rejection]]]:
    facts: list[JobFact] = []
    rejections: list[Rejection] = []
    for line in lines:
        result = pipeline.process(line, state, default_cluster=default_cluster, stages=stages)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            facts.append(result)
        if len(facts) >= size:
            yield facts, rejections
            facts, rejections = [], []
    yield facts, rejections


@click.command()
@click.argument("file", required=False)
@click.option(
    "--sacct-json",
    type=click.Path(dir_okay=False, exists=True),
    help="Load history from `sacct --json` output instead of raw jobcomp records.",
)
@click.option(
    "--sacct-psv",
    type=click.Path(dir_okay=False, exists=True),
    help="Load history from `sacct -P` output instead of raw jobcomp records.",
)
@click.option(
    "--tz",
    "tz_name",
    default="UTC",
    show_default=True,
    help="Time zone `sacct -P` printed its times in.",
)
@click.option("--cluster", help="Cluster for sacct jobs that carry none (default: settings).")
@click.option("--db", "db_url", help="Warehouse URL (default: settings.warehouse.url).")
@click.option(
    "--rejects",
    type=click.File("wb"),
    default=None,
    help="Write rejected records here (JSON lines with reason, detail, original bytes).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Facts per commit.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def backfill(
    ctx: click.Context,
    file: str | None,
    sacct_json: str | None,
    sacct_psv: str | None,
    tz_name: str,
    cluster: str | None,
    db_url: str | None,
    rejects: IO[bytes] | None,
    batch_size: int | None,
    no_progress: bool,
) -> None:
    """Load FILE (raw jobcomp records, one per line; ``-`` for stdin) through the same pure
    stages as the stream workers, straight into the warehouse; or load history from sacct
    output (``--sacct-json`` / ``--sacct-psv``) for sites without jobcomp records. Safe to
    repeat: the sink is idempotent on the natural key."""
    sources = [s for s in (file, sacct_json, sacct_psv) if s]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of FILE, --sacct-json FILE, --sacct-psv FILE")
    if sacct_json or sacct_psv:
        from jobcarbon.cli.backfill_sacct import backfill_sacct

        path = sacct_json or sacct_psv
        assert path is not None
        backfill_sacct(ctx, path, bool(sacct_psv), cluster, tz_name, db_url)
        return
    assert file is not None
    from warehouse import migrate
    from warehouse.engine import make_engine
    from warehouse.sink import SinkResult, write_facts

    settings = settings_from(ctx)
    engine = make_engine(db_url or settings.warehouse.url)
    migrate.upgrade(engine)
    size = batch_size or settings.warehouse.batch_size
    stream = open_input(file)
    total_bytes = os.fstat(stream.fileno()).st_size if file != "-" else None
    bar = tqdm(
        total=total_bytes or None,
        unit="B",
        unit_scale=True,
        disable=no_progress,
        desc="backfill",
    )

    def lines() -> Iterator[bytes]:
        for line in read_lines(stream):
            bar.update(len(line) + 1)
            yield line

    result = SinkResult()
    n_rejected = 0
    with bar:
        stages = pipeline.stages_for(settings, clock=lambda: datetime.now(UTC))
        batches = _batches(lines(), EnrichmentState(), stages, settings.default_cluster, size)
        for facts, rejections in batches:
            result += write_facts(engine, facts, default_cluster=settings.default_cluster)
            n_rejected += len(rejections)
            if rejects is not None:
                for rejection in rejections:
                    rejects.write(rejection.to_json_line() + b"\n")
            bar.set_postfix(
                landed=str(result.landed), rejected=str(n_rejected + len(result.rejected))
            )
    if rejects is not None:
        for refused in result.rejected:
            rejects.write(
                Rejection("sink_rejected", refused.reason, refused.job.encode()).to_json_line()
                + b"\n"
            )
    engine.dispose()
    click.echo(f"{result.summary()}; {n_rejected} record(s) rejected before the sink", err=True)

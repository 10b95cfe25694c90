"""``jobcarbon recompute --from T --to T``: recompute footprints and roll-ups of the facts
that ran in a window, after intensity or PUE revisions (only changed facts are written)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from jobcarbon.cli.common import settings_from
from jobcarbon.cli.db import DB_OPTION, warehouse_url
from jobcarbon.cli.intensity import parse_time

ANNUAL_FORMATS = ("owid", "green-algorithms", "codecarbon")


@click.command()
@click.option(
    "--from", "start", required=True, help="Window start (ISO 8601 with zone, or a date)."
)
@click.option("--to", "end", required=True, help="Window end, exclusive.")
@DB_OPTION
@click.option(
    "--annual",
    type=click.Path(exists=True, dir_okay=False),
    help="Annual averages for the fallback (OWID, Green Algorithms or CodeCarbon file).",
)
@click.option(
    "--annual-format", type=click.Choice(ANNUAL_FORMATS), default="owid", show_default=True
)
@click.pass_context
def recompute(
    ctx: click.Context,
    start: str,
    end: str,
    db_url: str | None,
    annual: str | None,
    annual_format: str,
) -> None:
    """Recompute the footprints of jobs that ran during [--from, --to)."""
    from consumers.enrich.model import AnnualFactor, SeriesError
    from consumers.enrich.parsers import annual as annual_parsers
    from warehouse.engine import make_engine
    from warehouse.recompute import recompute as run

    settings = settings_from(ctx)
    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    if t1 <= t0:
        raise click.BadParameter("must be after --from", param_hint="--to")
    factors: list[AnnualFactor] = []
    if annual is not None:
        data = Path(annual).read_bytes()
        try:
            if annual_format == "owid":
                factors, _ = annual_parsers.parse_owid(data.decode("utf-8-sig"))
            elif annual_format == "green-algorithms":
                factors, _ = annual_parsers.parse_green_algorithms(data.decode("utf-8-sig"))
            else:
                factors, _ = annual_parsers.parse_codecarbon_mix(data)
        except (SeriesError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{annual}: {exc}") from exc
    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        result = run(engine, settings, t0, t1, datetime.now(UTC), factors)
    finally:
        engine.dispose()
    click.echo(
        f"recompute: {result.examined} fact(s) examined, {len(result.changed_ids)} changed, "
        f"{result.rollup_rows} roll-up row(s) moved",
        err=True,
    )

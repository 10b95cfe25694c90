"""``jobcarbon backfill --sacct-json FILE`` / ``--sacct-psv FILE``: load history from
``sacct --json`` or ``sacct -P`` output into the warehouse (each job's final slurmdbd energy;
jobs that cannot be read are listed)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from jobcarbon.cli.common import settings_from


def backfill_sacct(
    ctx: click.Context, file: str, psv: bool, cluster: str | None, tz_name: str, db_url: str | None
) -> None:
    """Backfill the warehouse from a sacct output file (``sacct -P`` when ``psv``)."""
    from consumers.reconcile.sacct import (
        SacctFormatError,
        fact_from_db,
        parse_sacct_json,
        parse_sacct_psv,
    )
    from warehouse.engine import make_engine
    from warehouse.sink.writer import write_facts

    settings = settings_from(ctx)
    default_cluster = cluster or settings.default_cluster
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"--tz {tz_name!r} is not a time zone") from None
    with open(file, "rb") as handle:
        data = handle.read()
    try:
        if psv:
            parsed = parse_sacct_psv(data.decode("utf-8", "replace"), default_cluster, tz)
        else:
            parsed = parse_sacct_json(data, default_cluster)
    except SacctFormatError as exc:
        raise click.ClickException(str(exc)) from None
    now = datetime.now(UTC)
    source = "sacct -P" if psv else f"sacct --json {parsed.parser}"
    facts = [fact_from_db(job, now, source) for job in parsed.jobs]
    engine = make_engine(db_url or settings.warehouse.url)
    try:
        sink = write_facts(engine, facts, default_cluster=default_cluster)
    finally:
        engine.dispose()
    for error in parsed.errors:
        click.echo(f"sacct: {error}", err=True)
    for rejected in sink.rejected:
        click.echo(f"sink: {rejected.job}: {rejected.reason}", err=True)
    click.echo(f"read {len(parsed.jobs)} job(s) from {source}; {sink.summary()}")
    if parsed.errors or sink.rejected:
        sys.exit(1)

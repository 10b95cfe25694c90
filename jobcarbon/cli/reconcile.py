"""``jobcarbon reconcile --since T``: reconcile again the facts the stream could not settle.

Reads the warehouse's ``not_checked`` / ``unreconciled`` / ``missing_in_db`` facts that ended
since T, looks them up in slurmdbd (or in a ``sacct --json`` / ``sacct -P`` file), and lands
them again through the warehouse sink (roll-ups follow).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime

import click

from jobcarbon.cli.common import settings_from
from schemas.fact import JobFact


def parse_when(value: str) -> datetime:
    """An ISO 8601 date or time; naive values are UTC."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@click.command()
@click.option("--since", "since", required=True, help="Sweep facts that ended at or after this.")
@click.option("--until", "until", help="... and before this (default: now).")
@click.option("--db", "db_url", help="Warehouse URL (default: settings.warehouse.url).")
@click.option(
    "--accounting",
    "accounting_url",
    help="slurmdbd database URL, read-only (default: settings.accounting.url).",
)
@click.option(
    "--sacct-json",
    type=click.Path(dir_okay=False, exists=True),
    help="Use this sacct --json file instead of the database.",
)
@click.option(
    "--sacct-psv",
    type=click.Path(dir_okay=False, exists=True),
    help="Use this sacct -P file instead of the database (times read as UTC).",
)
@click.option("--limit", default=100_000, show_default=True, help="Most facts per run.")
@click.option(
    "--fill-gaps",
    "gap_clusters",
    multiple=True,
    help="Also land slurmdbd jobs of this cluster that ended in the window and have no fact "
    "(lost jobcomp messages). Repeatable. Needs --accounting.",
)
@click.pass_context
def reconcile(
    ctx: click.Context,
    since: str,
    until: str | None,
    db_url: str | None,
    accounting_url: str | None,
    sacct_json: str | None,
    sacct_psv: str | None,
    limit: int,
    gap_clusters: tuple[str, ...],
) -> None:
    """Reconcile unreconciled facts with slurmdbd and land them again."""
    from consumers.reconcile.accounting import AccountingError, AccountingSource, SlurmdbdSource
    from consumers.reconcile.sacct import (
        SacctSource,
        fact_from_db,
        parse_sacct_json,
        parse_sacct_psv,
    )
    from consumers.reconcile.stage import sweep
    from consumers.reconcile.store import load_sweep_facts, stored_keys
    from warehouse.engine import make_engine
    from warehouse.sink.writer import write_facts

    settings = settings_from(ctx)
    start, end = parse_when(since), parse_when(until) if until else None
    source: AccountingSource
    db_source: SlurmdbdSource | None = None
    closer = None
    if sacct_json or sacct_psv:
        with open(sacct_json or sacct_psv or "", "rb") as handle:
            data = handle.read()
        parsed = (
            parse_sacct_json(data, settings.default_cluster)
            if sacct_json
            else parse_sacct_psv(data.decode("utf-8", "replace"), settings.default_cluster)
        )
        for error in parsed.errors:
            click.echo(f"sacct: {error}", err=True)
        source = SacctSource(parsed.jobs)
    else:
        url = accounting_url or settings.accounting.url
        if not url:
            raise click.UsageError(
                "no accounting source: give --accounting URL, --sacct-json or --sacct-psv "
                "(or set accounting.url)"
            )
        db_source = SlurmdbdSource(url, timeout_s=settings.accounting.timeout_s)
        source, closer = db_source, db_source.close
    if gap_clusters and db_source is None:
        raise click.UsageError("--fill-gaps needs the slurmdbd database (--accounting)")
    engine = make_engine(db_url or settings.warehouse.url)
    now = datetime.now(UTC)
    gaps: list[JobFact] = []
    try:
        facts = load_sweep_facts(engine, start, end, limit=limit)
        result = sweep(facts, source, now, settings.default_cluster)
        for cluster in gap_clusters:
            assert db_source is not None
            rows = db_source.ended_between(
                cluster, int(start.timestamp()), int((end or now).timestamp()), limit
            )
            have = stored_keys(engine, cluster, [(r.id_job, r.time_submit) for r in rows])
            gaps += [fact_from_db(r, now) for r in rows if (r.id_job, r.time_submit) not in have]
        sink = write_facts(engine, result.done + gaps, default_cluster=settings.default_cluster)
    except AccountingError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        engine.dispose()
        if closer is not None:
            closer()
    for error in result.errors:
        click.echo(f"reconcile: {error}", err=True)
    for rejected in sink.rejected:
        click.echo(f"sink: {rejected.job}: {rejected.reason}", err=True)
    counts = Counter(f.reconciliation.status for f in result.done)
    detail = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    filled = f"; filled {len(gaps)} gap(s) from slurmdbd" if gap_clusters else ""
    click.echo(f"swept {len(facts)} fact(s): {detail or 'nothing to do'}{filled}; {sink.summary()}")
    if result.errors or sink.rejected:
        sys.exit(1)

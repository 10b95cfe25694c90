"""``jobcarbon jobs``: a sacct-like listing of jobs with their energy and CO2e."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta

import click

from jobcarbon.cli.common import format_table
from jobcarbon.cli.db import DB_OPTION, warehouse_url


def parse_since(value: str | None, default_days: int = 28) -> datetime:
    """``YYYY-MM-DD`` or an ISO date-time (UTC unless it has an offset); default: N days
    ago. Raises click.BadParameter naming the value."""
    if value is None:
        return datetime.now(UTC) - timedelta(days=default_days)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or ISO date-time", param_hint="--since"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _elapsed(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


@click.command()
@DB_OPTION
@click.option("--user", "-u", help="Whose jobs (default: you).")
@click.option("--all-users", is_flag=True, help="Every user's jobs (admins).")
@click.option("--account", "-A", help="Only jobs charged to this account.")
@click.option("--since", "-S", help="Jobs that ended since (YYYY-MM-DD; default: 28 days).")
@click.option("--limit", type=click.IntRange(1), default=10_000, show_default=True)
@click.pass_context
def jobs(
    ctx: click.Context,
    db_url: str | None,
    user: str | None,
    all_users: bool,
    account: str | None,
    since: str | None,
    limit: int,
) -> None:
    """List finished jobs: id, account, elapsed, IT and facility energy (kWh), CO2e (g)
    per carbon-intensity provider and signal."""
    from warehouse.engine import make_engine
    from warehouse.queries import list_jobs

    who = None if all_users else (user or getpass.getuser())
    start = parse_since(since)
    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        with engine.connect() as conn:
            lines = list_jobs(conn, since=start, user=who, account=account, limit=limit)
    finally:
        engine.dispose()
    series = sorted({name for line in lines for name in line.co2e_g})
    headers = ["cluster", "job_id", "user", "account", "end", "elapsed", "energy_kwh",
               "facility_kwh", *(f"co2e_g {s}" for s in series)]  # fmt: skip
    rows = [
        [line.cluster, str(line.job_id), line.user, line.account,
         line.end_at.strftime("%Y-%m-%dT%H:%M:%SZ") if line.end_at else None,
         _elapsed(line.elapsed_s), line.energy_it_kwh, line.energy_facility_kwh,
         *(line.co2e_g.get(s) for s in series)]
        for line in lines
    ]  # fmt: skip
    align = "llllll" + "r" * (2 + len(series))
    click.echo(format_table(headers, rows, align))
    click.echo(f"{len(lines)} job(s) since {start:%Y-%m-%dT%H:%M:%SZ}", err=True)

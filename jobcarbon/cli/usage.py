"""``jobcarbon usage --by user|account``: footprint totals from the day roll-ups."""

from __future__ import annotations

import click

from jobcarbon.cli.common import format_table
from jobcarbon.cli.db import DB_OPTION, warehouse_url
from jobcarbon.cli.jobs import parse_since


@click.command()
@DB_OPTION
@click.option("--by", type=click.Choice(["user", "account"]), default="user", show_default=True)
@click.option("--name", help="Only this user or account.")
@click.option("--since", "-S", help="First UTC day (YYYY-MM-DD; default: 28 days ago).")
@click.pass_context
def usage(
    ctx: click.Context, db_url: str | None, by: str, name: str | None, since: str | None
) -> None:
    """Totals per user or account since a day: jobs, core-hours, IT and facility energy
    (kWh), CO2e (kg, accounting signal) and the share of core-hours with measured energy."""
    from warehouse.engine import make_engine
    from warehouse.queries import usage as usage_query

    first_day = parse_since(since).date()
    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        with engine.connect() as conn:
            lines = usage_query(conn, by=by, since=first_day, name=name)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    headers = [by, "jobs", "core_hours", "energy_kwh", "facility_kwh", "co2e_kg", "coverage"]
    rows = [
        [u.name, u.jobs, u.core_hours, u.energy_it_kwh, u.energy_facility_kwh, u.co2e_kg,
         None if u.energy_coverage is None else f"{u.energy_coverage:.0%}"]
        for u in lines
    ]  # fmt: skip
    click.echo(format_table(headers, rows, "lrrrrrr"))
    click.echo(f"{len(lines)} {by}(s) since {first_day.isoformat()}", err=True)

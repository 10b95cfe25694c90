"""``jobcarbon db upgrade|downgrade|current``: migrate the warehouse schema."""

from __future__ import annotations

import click

from jobcarbon.cli.common import settings_from

DB_OPTION = click.option(
    "--db", "db_url", help="Warehouse SQLAlchemy URL (default: settings.warehouse.url)."
)


def warehouse_url(ctx: click.Context, db_url: str | None) -> str:
    """The URL given on the command line, else the configured one."""
    return db_url or settings_from(ctx).warehouse.url


@click.group()
def db() -> None:
    """Create, migrate and inspect the warehouse schema."""


@db.command()
@DB_OPTION
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, db_url: str | None, revision: str) -> None:
    """Migrate the warehouse up to REVISION (default: head) and re-create its views."""
    from warehouse import migrate
    from warehouse.engine import make_engine

    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        reached = migrate.upgrade(engine, revision)
    finally:
        engine.dispose()
    click.echo(f"warehouse at revision {reached}")


@db.command()
@DB_OPTION
@click.argument("revision", default="-1")
@click.pass_context
def downgrade(ctx: click.Context, db_url: str | None, revision: str) -> None:
    """Migrate the warehouse down to REVISION (default: one step; ``base`` drops it all)."""
    from warehouse import migrate
    from warehouse.engine import make_engine

    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        reached = migrate.downgrade(engine, revision)
    finally:
        engine.dispose()
    click.echo(f"warehouse at revision {reached or 'base'}")


@db.command()
@DB_OPTION
@click.pass_context
def current(ctx: click.Context, db_url: str | None) -> None:
    """Print the revision the warehouse is at (and the code's head)."""
    from warehouse import migrate
    from warehouse.engine import make_engine

    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        at = migrate.current(engine)
    finally:
        engine.dispose()
    click.echo(f"warehouse at revision {at or 'base'} (head {migrate.head()})")


@db.command("grant-reader")
@DB_OPTION
@click.option("--member", help="An existing login role to make a reader.")
@click.pass_context
def grant_reader(ctx: click.Context, db_url: str | None, member: str | None) -> None:
    """Create the read-only role jobcarbon_reader (PostgreSQL) and grant it SELECT."""
    from warehouse.engine import make_engine
    from warehouse.roles import RoleError
    from warehouse.roles import grant_reader as grant

    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        grant(engine, member)
    except RoleError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(
        "jobcarbon_reader can read the warehouse" + (f"; {member} is a member" if member else "")
    )

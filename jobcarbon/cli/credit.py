"""``jobcarbon credit``: run the credit API, sweep the ledger, write the deny cache."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta

import click

from jobcarbon.cli.common import settings_from


@click.group()
def credit() -> None:
    """The submission-time carbon credit check (docs/credit.md)."""


@credit.command()
@click.option("--host", default=None, help="Bind address (settings: credit.host).")
@click.option("--port", type=int, default=None, help="Port (settings: credit.port).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Run the credit API (OpenAPI at /docs and /openapi.json) with uvicorn (uvloop and
    httptools) in WORKERS processes, each on its own SO_REUSEPORT socket (one per core is a
    good start; jobcarbon/api/serve.py)."""
    from jobcarbon.api.factory import GENERATION_ENV
    from jobcarbon.api.serve import serve as serve_workers

    settings = settings_from(ctx)
    config = ctx.find_root().obj.get("config")
    if config:  # worker processes read the same file
        os.environ["JOBCARBON_CONFIG"] = os.path.abspath(config)
    with tempfile.TemporaryDirectory(prefix="jobcarbon-credit-") as state:
        # The workers' shared ledger generation counter (jobcarbon.credit.memory).
        os.environ[GENERATION_ENV] = os.path.join(state, "ledger-generation")
        serve_workers(host or settings.credit.host, port or settings.credit.port, workers)


@credit.command()
@click.pass_context
def sweep(ctx: click.Context) -> None:
    """Settle reservations whose jobs landed in the warehouse; release stale ones."""
    from jobcarbon.credit.sql import SqlCreditStore
    from warehouse.engine import make_engine

    settings = settings_from(ctx)
    store = SqlCreditStore(make_engine(settings.warehouse.url), cluster=settings.credit.cluster)
    now = datetime.now(UTC)
    stale = now - timedelta(hours=settings.credit.stale_reservation_hours)
    settled, released = store.sweep(now=now, stale_before=stale, actor="jobcarbon credit sweep")
    click.echo(f"settled {settled} reservation(s), released {released} stale reservation(s)")


@credit.command("deny-list")
@click.option("--out", default=None, help="File to write (settings: credit.deny_list_file).")
@click.pass_context
def deny_list_cmd(ctx: click.Context, out: str | None) -> None:
    """Write the deny cache job_submit.lua reads (atomically: temp file, then rename)."""
    from jobcarbon.api.app import deny_list
    from jobcarbon.api.factory import build_app_config

    settings = settings_from(ctx)
    text = deny_list(build_app_config(settings, serving=False), datetime.now(UTC))
    path = out or settings.credit.deny_list_file
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".deny-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    click.echo(f"wrote {path} ({len(text.splitlines()) - 1} denied scope(s))")

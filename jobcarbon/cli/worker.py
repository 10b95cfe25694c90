"""``jobcarbon worker``: one stream worker process (start more to share the partitions)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import click

from jobcarbon.cli.common import settings_from


@click.command()
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="HTTP port for /metrics (default: kafka.worker_web_port; 0 picks a free one).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="faust's data directory (default: a temporary directory).",
)
@click.option(
    "--loglevel",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option("--no-migrate", is_flag=True, help="Do not migrate the warehouse to head first.")
@click.pass_context
def worker(
    ctx: click.Context, web_port: int | None, data_dir: str | None, loglevel: str, no_migrate: bool
) -> None:
    """Consume slurm.jobcomp, normalize, enrich, reconcile and land facts in the warehouse;
    bad records go to slurm.jobcomp.dlq. Runs until SIGINT/SIGTERM."""
    from warehouse.arrow_setup import arrow_without_pandas

    arrow_without_pandas()  # before the sink's first array: ~45 MB less per worker
    import faust

    from consumers.kafka.admin import ensure_topics
    from consumers.kafka.broker import free_port
    from consumers.sink import warehouse_writer
    from consumers.stream.app import create_app
    from consumers.stream.logs import logging_config

    settings = settings_from(ctx)
    ensure_topics(settings.kafka)
    writer = warehouse_writer(
        settings.warehouse.url, default_cluster=settings.default_cluster, migrate=not no_migrate
    )
    port = settings.kafka.worker_web_port if web_port is None else web_port
    with tempfile.TemporaryDirectory(prefix="jobcarbon-worker-") as tmp:
        stream = create_app(
            settings,
            writer=writer,
            datadir=Path(data_dir or tmp),
            web_port=port or free_port(),
            log_config=logging_config(loglevel),
        )
        faust.Worker(
            stream.app,
            loglevel=loglevel.upper(),
            redirect_stdouts=False,
        ).execute_from_commandline()
    logging.shutdown()

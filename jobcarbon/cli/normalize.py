"""``jobcarbon normalize FILE [--rejects FILE]``: raw jobcomp lines in, normalized JSON out."""

from __future__ import annotations

import sys
from collections import Counter

import click

from consumers.ingest import Rejection, normalize_bytes
from jobcarbon.cli.common import open_input, read_lines, settings_from


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@click.option(
    "--rejects",
    type=click.File("wb"),
    help="Write one JSON line per rejected input (reason, detail, raw).",
)
@click.option("--cluster", help="Cluster name for records without one (default: settings).")
@click.pass_context
def normalize(
    ctx: click.Context, file: str, rejects: click.utils.LazyFile | None, cluster: str | None
) -> None:
    """Normalize raw jobcomp records (one per line, bytes as Slurm sends them).

    Normalized records go to stdout as JSON lines; a summary goes to stderr. Exits 0 once
    the file is processed, even when some lines were rejected.
    """
    default_cluster = cluster or settings_from(ctx).default_cluster
    out = sys.stdout.buffer
    reasons: Counter[str] = Counter()
    accepted = 0
    with open_input(file) as stream:
        for line in read_lines(stream):
            result = normalize_bytes(line, default_cluster=default_cluster)
            if isinstance(result, Rejection):
                reasons[result.reason] += 1
                if rejects is not None:
                    rejects.write(result.to_json_line() + b"\n")
                continue
            accepted += 1
            out.write(result.to_json() + b"\n")
    out.flush()
    rejected = sum(reasons.values())
    detail = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
    click.echo(
        f"normalized {accepted} record(s), rejected {rejected}"
        + (f" ({detail})" if detail else ""),
        err=True,
    )

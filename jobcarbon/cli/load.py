"""``jobcarbon load [--db URL] FILE``: normalized JSON lines into the warehouse sink."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import click
import orjson

from jobcarbon.cli.common import open_input, read_lines, settings_from
from jobcarbon.cli.db import DB_OPTION, warehouse_url
from schemas.fact import JobFact, fact_from_record
from schemas.job import JobRecordError, job_record_from_json

#: Facts handed to the sink at once (it batches them into transactions itself).
CHUNK = 20_000


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@DB_OPTION
@click.option("--copy", "use_copy", is_flag=True, help="Bulk path (PostgreSQL COPY).")
@click.option(
    "--defer-indexes",
    is_flag=True,
    help="With --copy: drop fact_job's secondary indexes for the load and build them after it "
    "(a first load or a backfill nobody queries meanwhile; see docs/warehouse.md).",
)
@click.option("--cluster", help="Cluster for records without one (default: settings).")
@click.option("--rejects", type=click.File("wb"), help="Write one JSON line per rejected input.")
@click.pass_context
def load(
    ctx: click.Context,
    file: str,
    db_url: str | None,
    use_copy: bool,
    defer_indexes: bool,
    cluster: str | None,
    rejects: click.utils.LazyFile | None,
) -> None:
    """Load normalized records (the output of ``jobcarbon normalize``) into the warehouse.

    Each record becomes a fact (jobcomp energy when it was measured); facts land through
    the sink, so loading a file twice changes nothing. A summary goes to stderr.
    """
    from warehouse import migrate
    from warehouse.engine import make_engine
    from warehouse.sink import SinkResult, copy_facts, deferred_indexes, write_facts

    settings = settings_from(ctx)
    default_cluster = cluster or settings.default_cluster
    engine = make_engine(warehouse_url(ctx, db_url))
    try:
        if migrate.current(engine) != migrate.head():
            raise click.UsageError(
                "the warehouse schema is not at head: run `jobcarbon db upgrade` first"
            )
        if defer_indexes and not use_copy:
            raise click.UsageError("--defer-indexes goes with --copy")
        total = SinkResult()
        bad_lines = 0
        with open_input(file) as stream, _deferred(engine, defer_indexes, deferred_indexes):
            for facts, errors in _chunks(read_lines(stream)):
                bad_lines += len(errors)
                for line_no, error in errors:
                    _reject(rejects, {"line": line_no, "reason": error})
                if use_copy:
                    result = copy_facts(engine, facts, default_cluster=default_cluster)
                else:
                    result = write_facts(
                        engine,
                        facts,
                        default_cluster=default_cluster,
                        batch_size=settings.warehouse.batch_size,
                    )
                for rejected in result.rejected:
                    _reject(rejects, {"job": rejected.job, "reason": rejected.reason})
                total += result
    finally:
        engine.dispose()
    click.echo(f"loaded: {total.summary()}; unreadable lines {bad_lines}", err=True)


def _deferred(engine: Any, defer: bool, deferred: Any) -> AbstractContextManager[None]:
    return deferred(engine) if defer else nullcontext()


def _chunks(lines: Iterator[bytes]) -> Iterator[tuple[list[JobFact], list[tuple[int, str]]]]:
    facts: list[JobFact] = []
    errors: list[tuple[int, str]] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            facts.append(fact_from_record(job_record_from_json(line)))
        except JobRecordError as exc:
            errors.append((line_no, f"line {line_no}: {exc}"))
        if len(facts) >= CHUNK:
            yield facts, errors
            facts, errors = [], []
    if facts or errors:
        yield facts, errors


def _reject(out: click.utils.LazyFile | None, entry: dict[str, object]) -> None:
    if out is not None:
        out.write(orjson.dumps(entry) + b"\n")

"""bench/warehouse_stages: where the sink's time goes, per stage, client and server.

Runs the sink's own stages one by one on ``--jobs`` synthetic facts (replicas of ``--base``,
as bench.warehouse) in batches of ``--batch`` (1000: a stream worker's batch; 20000: a COPY
chunk) into a throwaway PostgreSQL 15, and prints per stage this thread's CPU per fact
(``time.thread_time``) and the server backend's (``/proc``). Each batch is one transaction,
as in ``writer.apply_batch``. ``--deferred`` runs inside ``deferred_indexes`` (the index
build afterwards is printed on its own).

Run: ``python -m bench.warehouse_stages [--jobs 200000] [--batch 1000] [--deferred]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.warehouse import replicas
from bench.warehouse_ceiling import backend_cpu
from tests.services.postgres import fresh_database, start_server, stop_server
from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.indexes import deferred_indexes
from warehouse.sink import pgcopy, writer
from warehouse.sink.batch import build_all, latest_per_key
from warehouse.sink.delta import contributions

T = TypeVar("T")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--base", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--deferred", action="store_true")
    args = parser.parse_args()
    base = synthdata.facts(min(args.base, args.jobs), seed=2024)
    client: dict[str, float] = {}
    server: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-stages-"))
    pg = start_server(tmp)
    try:
        with fresh_database(pg) as url:
            engine = make_engine(url)
            migrate.upgrade(engine)
            now = datetime.now(UTC)
            gc.disable()  # as write_facts / copy_facts do
            block = deferred_indexes(engine) if args.deferred else contextlib.nullcontext()
            started = time.perf_counter()
            with block:
                for facts in replicas(base, args.jobs, args.batch):
                    _one_batch(engine, facts, now, client, server)
                loaded = time.perf_counter()
            wall = time.perf_counter() - started
            if args.deferred:
                print(f"index build after the load: {time.perf_counter() - loaded:.1f} s wall")
            engine.dispose()
    finally:
        stop_server(pg)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.jobs:,} facts in batches of {args.batch:,}: {args.jobs / wall:,.0f} facts/s "
          "(stages one after the other, no overlap)")  # fmt: skip
    print(f"{'stage':28s} {'client us/fact':>15s} {'server us/fact':>15s}")
    for stage in client:
        print(f"{stage:28s} {client[stage] / args.jobs * 1e6:15.2f} "
              f"{server.get(stage, 0.0) / args.jobs * 1e6:15.2f}")  # fmt: skip
    print(f"{'total':28s} {sum(client.values()) / args.jobs * 1e6:15.2f} "
          f"{sum(server.values()) / args.jobs * 1e6:15.2f}")  # fmt: skip


def _one_batch(
    engine: Any, facts: list[Any], now: datetime, client: dict[str, float], server: dict[str, float]
) -> None:
    def timed(stage: str, pid: int | None, work: Callable[[], T]) -> T:
        c0, s0 = time.thread_time(), backend_cpu(pid) if pid else 0.0
        out = work()
        client[stage] = client.get(stage, 0.0) + time.thread_time() - c0
        if pid:
            server[stage] = server.get(stage, 0.0) + backend_cpu(pid) - s0
        return out

    built = timed("validate + hash (build)", None, lambda: build_all(facts))
    batch = timed("deduplicate", None, lambda: latest_per_key(built.batch))
    cache = writer.dim_cache(engine)
    with engine.begin() as conn:
        pid = conn.connection.driver_connection.info.backend_pid
        ids, learnt = timed("dimension ids", pid, lambda: writer.resolve(conn, batch, cache))
        keys = pgcopy.db_keys(batch, ids)
        stored = timed("stored-key lookup", pid, lambda: writer.fetch_stored(conn, keys))
        decided = writer.plan(batch, keys, stored)
        rows = np.array(decided.inserts, dtype=np.int64)
        new, new_ids = batch.take(rows), ids.take(rows)
        fact_ids = timed("fact ids (sequence)", pid, lambda: pgcopy.new_ids(conn, len(new)))
        timed(
            "COPY fact rows", pid, lambda: pgcopy.copy_new_facts(conn, new, new_ids, now, fact_ids)
        )
        timed("COPY CO2e rows", pid, lambda: pgcopy.copy_co2e(conn, new, fact_ids))
        delta = timed(
            "roll-up deltas", pid, lambda: contributions(writer.rollup_inputs(new, new_ids))
        )
        timed("roll-up upsert", pid, lambda: writer.apply_rollups(conn, delta))
        c0 = time.thread_time()
    client["commit"] = client.get("commit", 0.0) + time.thread_time() - c0
    cache.update(learnt)


if __name__ == "__main__":
    main()

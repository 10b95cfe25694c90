"""bench/warehouse_ceiling: how fast the PostgreSQL server alone ingests fact rows.

No Python work per row: ``--jobs`` synthetic facts are loaded once through the sink into a
scratch database, replicated there in SQL under new ids and job ids, and exported with
``COPY ... TO STDOUT (FORMAT BINARY)`` (exactly the bytes the sink sends). Each variant then
replays those bytes into a fresh database with ``COPY ... FROM STDIN`` in steps of
``--step`` rows and prints wall rows/s and the server backend's CPU per row (``/proc``).

Variants: the schema at head (every index), without the secondary indexes, with no index
but the primary key and natural key, and with the secondary indexes built after the load.

Run: ``python -m bench.warehouse_ceiling [--jobs 1000000] [--base 50000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.services.postgres import fresh_database, start_server, stop_server
from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.sink import copy_facts

SECONDARY = (
    "ix_fact_job_end_at",
    "ix_fact_job_reconcile_status",
    "ix_fact_job_user_partition_end",
    "ix_fact_job_account_partition_end",
    "ix_fact_job_partition_end",
    "ix_fact_job_user_account_end",
)
TICK = os.sysconf("SC_CLK_TCK")


def connect(url: str) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database)


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of one server process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def export(url: str, table: str, where: str) -> bytes:
    out = bytearray()
    statement = f"COPY (SELECT * FROM {table} WHERE {where}) TO STDOUT (FORMAT BINARY)"
    with connect(url) as conn, conn.cursor() as cur, cur.copy(statement) as c:
        for block in c:
            out += block
    return bytes(out)


def blocks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def replay(
    url: str, parts: list[tuple[bytes, bytes]], label: str, drop: tuple[str, ...], rebuild: bool
) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    with connect(url) as conn:
        for name in drop:
            conn.execute(f"DROP INDEX {name}")  # bench only: fixed names above
        conn.commit()
        pid = conn.info.backend_pid
        rows = wall = cpu = 0.0
        print(f"{label}:")
        for facts, co2e in parts:
            t0, c0 = time.perf_counter(), backend_cpu(pid)
            with conn.cursor() as cur:
                for table, data in (("fact_job", facts), ("fact_job_co2e", co2e)):
                    with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as c:
                        for block in blocks(data):
                            c.write(block)
            conn.commit()
            dt, dc = time.perf_counter() - t0, backend_cpu(pid) - c0
            n = facts_in(facts)
            rows += n
            wall += dt
            cpu += dc
            print(f"  {int(rows):>9,} facts: step {n / dt:9,.0f} facts/s, server CPU "
                  f"{dc / n * 1e6:5.1f} us/fact", flush=True)  # fmt: skip
        if rebuild:
            t0, c0 = time.perf_counter(), backend_cpu(pid)
            conn.execute("SET maintenance_work_mem = '512MB'")
            for name in drop:
                conn.execute(_CREATE[name])
            conn.commit()
            dt, dc = time.perf_counter() - t0, backend_cpu(pid) - c0
            print(f"  index build after the load: {dt:.1f} s wall, {dc / rows * 1e6:.1f} us/fact")
            wall += dt
            cpu += dc
        print(f"  total {rows / wall:,.0f} facts/s wall, {cpu / rows * 1e6:.1f} us server CPU/fact")


_CREATE = {
    "ix_fact_job_end_at": "CREATE INDEX ix_fact_job_end_at ON fact_job (end_at)",
    "ix_fact_job_reconcile_status": (
        "CREATE INDEX ix_fact_job_reconcile_status ON fact_job (reconcile_status)"
    ),
    "ix_fact_job_user_partition_end": (
        "CREATE INDEX ix_fact_job_user_partition_end ON fact_job (user_id, partition_id, end_at)"
    ),
    "ix_fact_job_account_partition_end": (
        "CREATE INDEX ix_fact_job_account_partition_end"
        " ON fact_job (account_id, partition_id, end_at)"
    ),
    "ix_fact_job_partition_end": (
        "CREATE INDEX ix_fact_job_partition_end ON fact_job (partition_id, end_at)"
    ),
    "ix_fact_job_user_account_end": (
        "CREATE INDEX ix_fact_job_user_account_end ON fact_job (user_id, account_id, end_at)"
    ),
}


def facts_in(data: bytes) -> int:
    return _COUNTS[id(data)]


_COUNTS: dict[int, int] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=50_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--variants", default="head,no-secondary,build-after")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobcarbon-ceiling-"))
    server = start_server(tmp)
    try:
        with fresh_database(server) as scratch:
            engine = make_engine(scratch)
            migrate.upgrade(engine)
            base = synthdata.facts(args.base, seed=2024)
            copy_facts(engine, base, chunk_size=20_000)
            engine.dispose()
            copies = -(-args.jobs // args.base)
            with connect(scratch) as conn:
                cols = [r[0] for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'fact_job'::regclass"
                    " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]  # fmt: skip
                shifted = ", ".join(
                    f"{c} + %(k)s::bigint * 10000000" if c in ("id", "job_id") else c for c in cols
                )
                ccols = [r[0] for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'fact_job_co2e'::regclass"
                    " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]  # fmt: skip
                cshift = ", ".join(
                    f"{c} + %(k)s::bigint * 10000000" if c == "fact_id" else c for c in ccols
                )
                for k in range(1, copies):
                    conn.execute(
                        f"INSERT INTO fact_job SELECT {shifted} FROM fact_job"
                        " WHERE id < 10000000", {"k": k}
                    )  # fmt: skip
                    conn.execute(
                        f"INSERT INTO fact_job_co2e SELECT {cshift} FROM fact_job_co2e"
                        " WHERE fact_id < 10000000", {"k": k}
                    )  # fmt: skip
                conn.commit()
                total = conn.execute("SELECT count(*) FROM fact_job").fetchone()[0]  # type: ignore[index]
            print(f"{total:,} facts in the scratch database; exporting", flush=True)
            parts: list[tuple[bytes, bytes]] = []
            per_step = max(1, args.step // args.base)
            for k in range(0, copies, per_step):
                lo, hi = k * 10_000_000, (k + per_step) * 10_000_000
                facts = export(scratch, "fact_job", f"id >= {lo} AND id < {hi}")
                co2e = export(scratch, "fact_job_co2e", f"fact_id >= {lo} AND fact_id < {hi}")
                _COUNTS[id(facts)] = min(per_step, copies - k) * args.base
                parts.append((facts, co2e))
            size = sum(len(f) for f, _ in parts) / total
            csize = sum(len(c) for _, c in parts) / total
            print(f"binary COPY bytes per fact: {size:.0f} (fact_job) + {csize:.0f} (CO2e rows)")
        for variant in args.variants.split(","):
            drop = {"head": (), "no-secondary": SECONDARY, "build-after": SECONDARY}[variant]
            with fresh_database(server) as url:
                replay(url, parts, variant, drop, variant == "build-after")
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

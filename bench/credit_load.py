"""Load synthetic history (jobcarbon.synth) into a migrated warehouse: dimensions, facts and
the roll-ups the sink would maintain (computed with the warehouse's own pure
``add_contributions``). Used by bench/credit and the credit store tests; PostgreSQL gets COPY.

Each job's CO2e: IT energy (slurmdbd's value; a bogus counter leaves it NULL) x PUE x an
intensity that follows the hour of day (``intensity_at``), so numbers are easy to recompute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from jobcarbon.synth import SynthJob
from schemas.fact import J_PER_KWH
from warehouse.models.rollups import COUNT_MEASURES, MEASURES
from warehouse.sink.delta import RollupInput, add_contributions, empty_delta

PUE = 1.3
MAX_VALID_J = 10**15


def intensity_at(epoch: int) -> float:
    """A diurnal intensity (g/kWh): 300 +- 100 over the day."""
    hour = (epoch % 86_400) / 3_600
    return 300.0 + 100.0 * math.sin(2 * math.pi * hour / 24)


FACT_COLUMNS = (
    "id", "cluster_id", "job_id", "submit_epoch", "event", "record_version", "job_name",
    "user_id", "account_id", "partition_id", "qos_id", "uid", "state", "submit_at", "start_at",
    "end_at", "start_epoch", "end_epoch", "elapsed_s", "time_limit_s", "node_count", "cpus",
    "gpus", "shared_node", "energy_it_j", "energy_origin", "jobcomp_energy_status",
    "jobcomp_energy_source", "site", "pue_factor", "energy_facility_j", "co2e_g",
    "reconcile_status", "reconcile_attempts", "patched", "content_hash", "inserted_at",
    "updated_at",
)  # fmt: skip


def _dims(engine: Engine, jobs: Sequence[SynthJob]) -> dict[str, dict[Any, int]]:
    names = {
        "dim_cluster": sorted({j.cluster for j in jobs}),
        "dim_user": sorted({j.user.name for j in jobs}),
        "dim_account": sorted({j.account for j in jobs}),
        "dim_qos": sorted({j.qos for j in jobs}),
    }
    ids: dict[str, dict[Any, int]] = {}
    with engine.begin() as conn:
        for table, values in names.items():
            stmt = text(f"INSERT INTO {table} (id, name) VALUES (:id, :name)")
            conn.execute(stmt, [{"id": i + 1, "name": v} for i, v in enumerate(values)])
            ids[table] = {v: i + 1 for i, v in enumerate(values)}
        uids = {j.user.name: j.user.uid for j in jobs}
        conn.execute(
            text("UPDATE dim_user SET uid = :uid WHERE name = :name"),
            [{"uid": uid, "name": n} for n, uid in uids.items()],
        )
        parts = sorted({(j.cluster, j.partition) for j in jobs})
        conn.execute(
            text("INSERT INTO dim_partition (id, cluster_id, name) VALUES (:id, :cid, :name)"),
            [
                {"id": i + 1, "cid": ids["dim_cluster"][c], "name": p}
                for i, (c, p) in enumerate(parts)
            ],
        )
        ids["dim_partition"] = {cp: i + 1 for i, cp in enumerate(parts)}
    return ids


def fact_values(job: SynthJob, fact_id: int, ids: dict[str, dict[Any, int]]) -> tuple[Any, ...]:
    """One fact row in FACT_COLUMNS order."""
    raw = job.energy_db_j
    energy = raw if raw is not None and raw < MAX_VALID_J else None
    status = "measured" if energy is not None else ("missing" if raw is None else "invalid")
    start_epoch = int(job.start.timestamp()) if job.start else None
    end_epoch = int(job.end.timestamp())
    facility = None if energy is None else energy * PUE
    co2e = None if facility is None else facility / J_PER_KWH * intensity_at(start_epoch or 0)
    submit_epoch = int(job.submit.timestamp())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return (
        fact_id, ids["dim_cluster"][job.cluster], job.job_id, submit_epoch, "end", 1,
        job.job_name, ids["dim_user"][job.user.name], ids["dim_account"][job.account],
        ids["dim_partition"][(job.cluster, job.partition)], ids["dim_qos"][job.qos],
        job.user.uid, job.state, job.submit, job.start, job.end, start_epoch, end_epoch,
        job.elapsed_s, job.time_limit_s, len(job.nodes), job.cpus, job.gpus,
        not job.exclusive, energy, "slurmdbd" if energy is not None else "none", status,
        "synthetic", "default", PUE, facility, co2e, "match", 1, False, f"h{fact_id}", now, now,
    )  # fmt: skip


def rollup_rows(facts: Iterable[tuple[Any, ...]]) -> dict[str, list[dict[str, Any]]]:
    """Roll-up rows for the facts (the warehouse's apportioning rule)."""
    col = {name: i for i, name in enumerate(FACT_COLUMNS)}
    delta = empty_delta()
    jobs = [
        RollupInput(
            f[col["user_id"]], f[col["account_id"]], f[col["submit_epoch"]],
            f[col["start_epoch"]], f[col["end_epoch"]], f[col["cpus"]], f[col["gpus"]],
            f[col["energy_it_j"]], f[col["energy_facility_j"]], f[col["co2e_g"]], None,
            f[col["jobcomp_energy_status"]], f[col["reconcile_status"]],
        )
        for f in facts
    ]  # fmt: skip
    add_contributions(delta, jobs)
    out: dict[str, list[dict[str, Any]]] = {}
    for table, rows in delta.items():
        dim, period = (
            ("account_id", "month") if table == "rollup_account_month"
            else ("user_id" if table == "rollup_user_day" else "account_id", "day")
        )  # fmt: skip
        out[table] = [
            {
                dim: key[0],
                period: key[1],
                **{
                    m: round(v) if m in COUNT_MEASURES else v
                    for m, v in zip(MEASURES, values, strict=True)
                },
            }
            for key, values in rows.items()
        ]
    return out


def load(engine: Engine, jobs: Sequence[SynthJob]) -> dict[str, dict[Any, int]]:
    """Load ``jobs`` as facts and roll-ups into an empty migrated warehouse; returns the
    dimension ids (table -> natural key -> id)."""
    ids = _dims(engine, jobs)
    facts = [fact_values(j, i + 1, ids) for i, j in enumerate(jobs)]
    rollups = rollup_rows(facts)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY fact_job ({', '.join(FACT_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in facts:
                    copy.write_row(row)
            for table, rows in rollups.items():
                if not rows:
                    continue
                cols = list(rows[0])
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for r in rows:
                        copy.write_row([r[c] for c in cols])
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            names = ", ".join(FACT_COLUMNS)
            binds = ", ".join(f":{c}" for c in FACT_COLUMNS)
            conn.execute(
                text(f"INSERT INTO fact_job ({names}) VALUES ({binds})"),
                [dict(zip(FACT_COLUMNS, f, strict=True)) for f in facts],
            )
            for table, rows in rollups.items():
                if rows:
                    cols = list(rows[0])
                    conn.execute(
                        text(
                            f"INSERT INTO {table} ({', '.join(cols)}) "
                            f"VALUES ({', '.join(':' + c for c in cols)})"
                        ),
                        rows,
                    )
    return ids


_INSERT_FACT = text(
    f"INSERT INTO fact_job ({', '.join(FACT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in FACT_COLUMNS)})"
)


def insert_facts(engine: Engine, facts: Sequence[tuple[Any, ...]]) -> None:
    """Insert fact rows (FACT_COLUMNS order) without touching roll-ups."""
    with engine.begin() as conn:
        conn.execute(_INSERT_FACT, [dict(zip(FACT_COLUMNS, f, strict=True)) for f in facts])

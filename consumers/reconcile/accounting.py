"""The slurmdbd accounting source: read-only SQLAlchemy Core over MySQL/MariaDB (PyMySQL).

Reads ``<cluster>_job_table``, ``<cluster>_step_table``, ``<cluster>_assoc_table`` and the
global ``tres_table`` and ``qos_table`` of Slurm 22.05 to 26.05. Table names are built only
from a cluster name that matches a strict identifier pattern, and the tables are *reflected*
(the columns present decide what is read: ``lineage`` 23.11+, ``lft``/``rgt`` before 25.05,
``sluid`` 26.05+, ...). Every value travels as a bound parameter.

Lookups are batched: one query for the jobs of many ids (``UNIQUE (id_job, time_submit)``
prefix), one for their steps, the association/QoS/TRES tables cached and reloaded when an
unknown id shows up. Connection trouble raises ``AccountingUnavailable`` (retry later); a
cluster without tables raises ``AccountingSchemaError``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, Row

from consumers.reconcile.rules import (
    NO_VAL,
    AssocNode,
    DbJob,
    DbStep,
    lineage_accounts,
    nested_set_accounts,
)
from schemas.tres import STATIC_TRES_NAMES

#: Slurm cluster names (lower-case in slurmdbd); anything else never reaches a table name.
CLUSTER_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
#: Ids per IN (...) list: well under max_allowed_packet, big enough to amortise round trips.
BATCH: Final = 1000

_JOB_COLUMNS: Final = (
    "job_db_inx",
    "id_job",
    "time_submit",
    "time_eligible",
    "time_start",
    "time_end",
    "state",
    "exit_code",
    "derived_ec",
    "account",
    "partition",
    "id_user",
    "id_group",
    "id_assoc",
    "id_qos",
    "id_array_job",
    "id_array_task",
    "het_job_id",
    "het_job_offset",
    "job_name",
    "nodelist",
    "nodes_alloc",
    "timelimit",
    "tres_alloc",
    "tres_req",
    "sluid",
)
_STEP_COLUMNS: Final = (
    "job_db_inx",
    "id_step",
    "step_het_comp",
    "state",
    "exit_code",
    "consumed_energy",
    "time_start",
    "time_end",
    "step_name",
    "tres_usage_in_tot",
    "tres_usage_out_tot",
)


class AccountingError(Exception):
    """Base class: the accounting source could not answer."""


class AccountingUnavailable(AccountingError):
    """The database is unreachable, too slow or refused the query: retry later."""


class AccountingSchemaError(AccountingError):
    """The database has no slurmdbd tables for this cluster (or not a known layout)."""


class AccountingSource(Protocol):
    """What the reconcile stage needs from an accounting source (slurmdbd, sacct files)."""

    def fetch(self, cluster: str, job_ids: Collection[int]) -> list[DbJob]:
        """Every row (every run: requeues) of these Slurm job ids, with steps."""
        ...

    def fetch_by_inx(self, cluster: str, job_db_inxs: Collection[int]) -> list[DbJob]:
        """Rows by ``job_db_inx`` (24.11+: the SLUID), with steps."""
        ...


def check_cluster(cluster: str) -> str:
    """The cluster name, if it may be part of a table name; else ValueError naming it."""
    if not isinstance(cluster, str) or not CLUSTER_RE.match(cluster):
        raise ValueError(f"cluster {cluster!r} is not a valid Slurm cluster name")
    return cluster


def _chunks(values: Sequence[int], size: int = BATCH) -> Iterator[Sequence[int]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


@dataclass
class _Cluster:
    job: sa.Table
    step: sa.Table
    assoc: sa.Table
    assoc_rows: dict[int, tuple[str | None, str | None, tuple[str, ...]]]
    absent: set[int] = field(default_factory=set)  # ids still missing after a reload


def make_engine(url: str, *, timeout_s: float = 10.0) -> Engine:
    """A small read-only engine: short connect/read timeouts so an outage fails fast."""
    connect_args: dict[str, Any] = {}
    if url.startswith("mysql+pymysql"):
        connect_args = {
            "connect_timeout": max(1, int(timeout_s)),
            "read_timeout": max(1, int(timeout_s * 3)),
            "write_timeout": max(1, int(timeout_s * 3)),
        }
    return sa.create_engine(
        url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args, future=True
    )


class SlurmdbdSource:
    """Batched, read-only lookups in a slurmdbd database."""

    def __init__(self, engine: Engine | str, *, timeout_s: float = 10.0) -> None:
        self.engine = (
            make_engine(engine, timeout_s=timeout_s) if isinstance(engine, str) else engine
        )
        self._where = self.engine.url.render_as_string(hide_password=True)
        self._meta = sa.MetaData()
        self._clusters: dict[str, _Cluster] = {}
        self._tres: dict[int, str] = {}
        self._qos: dict[int, str] = {}
        self._absent_qos: set[int] = set()
        self.queries = 0  # round trips, for the benchmark and tests

    def close(self) -> None:
        self.engine.dispose()

    # -- errors ---------------------------------------------------------------------------------

    def _unavailable(self, exc: Exception) -> AccountingUnavailable:
        detail = str(getattr(exc, "orig", exc) or exc).splitlines()[0][:200]
        return AccountingUnavailable(f"slurmdbd database {self._where}: {detail}")

    def _execute(self, conn: sa.Connection, query: sa.Select[Any]) -> Sequence[Row[Any]]:
        self.queries += 1
        return conn.execute(query).all()

    # -- schema ---------------------------------------------------------------------------------

    def _cluster(self, conn: sa.Connection, cluster: str) -> _Cluster:
        found = self._clusters.get(cluster)
        if found is not None:
            return found
        check_cluster(cluster)
        try:
            tables = [
                sa.Table(f"{cluster}_{kind}_table", self._meta, autoload_with=conn)
                for kind in ("job", "step", "assoc")
            ]
        except sa_exc.NoSuchTableError as exc:
            raise AccountingSchemaError(
                f"slurmdbd database {self._where} has no table {exc.args[0]!r} "
                f"(is {cluster!r} a cluster of this slurmdbd?)"
            ) from None
        job, step, assoc = tables
        for table, needed in (
            (job, ("job_db_inx", "id_job", "time_submit", "tres_alloc")),
            (step, ("job_db_inx", "id_step", "consumed_energy")),
        ):
            missing = [c for c in needed if c not in table.c]
            if missing:
                raise AccountingSchemaError(f"{table.name} has no column(s) {missing}")
        found = _Cluster(job, step, assoc, {})
        self._clusters[cluster] = found
        return found

    def _load_assoc(self, conn: sa.Connection, info: _Cluster) -> None:
        assoc = info.assoc
        cols = [assoc.c.id_assoc, assoc.c.user, assoc.c.acct]
        has_lineage = "lineage" in assoc.c
        has_nested = "lft" in assoc.c and "rgt" in assoc.c
        if has_lineage:
            cols.append(assoc.c.lineage)
        if has_nested:
            cols += [assoc.c.lft, assoc.c.rgt]
        rows = self._execute(conn, sa.select(*cols))
        nodes = [AssocNode(r.acct, r.lft, r.rgt) for r in rows if not r.user] if has_nested else []
        out: dict[int, tuple[str | None, str | None, tuple[str, ...]]] = {}
        for r in rows:
            if has_lineage and r.lineage:
                path = lineage_accounts(r.lineage)
            elif has_nested:
                path = nested_set_accounts(r.lft, r.rgt, nodes)
            else:
                path = (r.acct,) if r.acct != "root" else ()
            out[int(r.id_assoc)] = (r.user or None, r.acct, path)
        info.assoc_rows = out

    def _load_globals(self, conn: sa.Connection) -> None:
        tres = sa.Table("tres_table", self._meta, autoload_with=conn)
        self._tres = dict(STATIC_TRES_NAMES)
        for r in self._execute(conn, sa.select(tres.c.id, tres.c.type, tres.c.name)):
            self._tres[int(r.id)] = f"{r.type}/{r.name}" if r.name else str(r.type)
        qos = sa.Table("qos_table", self._meta, autoload_with=conn)
        self._qos = {
            int(r.id): r.name for r in self._execute(conn, sa.select(qos.c.id, qos.c.name))
        }

    # -- lookups --------------------------------------------------------------------------------

    def fetch(self, cluster: str, job_ids: Collection[int]) -> list[DbJob]:
        """Every row of these job ids (all runs), with steps, names resolved."""
        ids = sorted({int(i) for i in job_ids})
        return self._fetch(cluster, "id_job", ids)

    def fetch_by_inx(self, cluster: str, job_db_inxs: Collection[int]) -> list[DbJob]:
        """Rows by ``job_db_inx``, with steps, names resolved."""
        return self._fetch(cluster, "job_db_inx", sorted({int(i) for i in job_db_inxs}))

    def fetch_one(self, cluster: str, job_id: int, time_submit: int) -> DbJob | None:
        """One job by its natural key in its own round trips (the benchmark's baseline)."""
        rows = self._fetch(cluster, "id_job", [job_id], time_submit=time_submit)
        return rows[0] if rows else None

    def ended_between(self, cluster: str, start: int, end: int, limit: int = 10000) -> list[DbJob]:
        """Rows whose job ended in ``[start, end)`` (epoch s): finds jobs with no record."""
        try:
            with self.engine.connect() as conn:
                info = self._cluster(conn, cluster)
                job = info.job
                query = (
                    sa.select(job.c.id_job)
                    .where(job.c.time_end >= start, job.c.time_end < end)
                    .order_by(job.c.time_end)
                    .limit(limit)
                )
                ids = [int(r.id_job) for r in self._execute(conn, query)]
        except sa_exc.SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc
        return [r for r in self.fetch(cluster, ids) if start <= r.time_end < end]

    def _fetch(
        self, cluster: str, column: str, keys: Sequence[int], time_submit: int | None = None
    ) -> list[DbJob]:
        if not keys:
            return []
        try:
            with self.engine.connect() as conn:
                info = self._cluster(conn, cluster)
                if not self._tres:
                    self._load_globals(conn)
                job = info.job
                cols = [job.c[name] for name in _JOB_COLUMNS if name in job.c]
                rows: list[Row[Any]] = []
                for chunk in _chunks(keys):
                    query = sa.select(*cols).where(job.c[column].in_(chunk))
                    if time_submit is not None:
                        query = query.where(job.c.time_submit == time_submit)
                    rows.extend(self._execute(conn, query))
                steps = self._steps(conn, info, [int(r.job_db_inx) for r in rows])
                # Reload a cached table when a row names an id it lacks; ids still missing
                # after a reload (deleted associations, odd rows) do not trigger it again.
                assoc_ids = {int(r.id_assoc) for r in rows if r.id_assoc is not None}
                if assoc_ids - info.assoc_rows.keys() - info.absent:
                    self._load_assoc(conn, info)
                    info.absent |= assoc_ids - info.assoc_rows.keys()
                qos_ids = {int(r.id_qos) for r in rows if r.id_qos}
                if qos_ids - self._qos.keys() - self._absent_qos:
                    self._load_globals(conn)
                    self._absent_qos |= qos_ids - self._qos.keys()
        except sa_exc.SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc
        except (OSError, TimeoutError) as exc:
            raise AccountingUnavailable(f"slurmdbd database {self._where}: {exc}") from exc
        return [self._job(cluster, info, r, steps.get(int(r.job_db_inx), ())) for r in rows]

    def _steps(
        self, conn: sa.Connection, info: _Cluster, inxs: Sequence[int]
    ) -> dict[int, tuple[DbStep, ...]]:
        step = info.step
        cols = [step.c[name] for name in _STEP_COLUMNS if name in step.c]
        out: dict[int, list[DbStep]] = {}
        for chunk in _chunks(sorted(set(inxs))):
            for r in self._execute(conn, sa.select(*cols).where(step.c.job_db_inx.in_(chunk))):
                m = r._mapping
                out.setdefault(int(r.job_db_inx), []).append(
                    DbStep(
                        id_step=int(m["id_step"]),
                        step_het_comp=_int(m.get("step_het_comp"), NO_VAL),
                        state=_int(m.get("state"), 0),
                        exit_code=_int(m.get("exit_code"), 0),
                        consumed_energy=m.get("consumed_energy"),
                        time_start=_int(m.get("time_start"), 0),
                        time_end=_int(m.get("time_end"), 0),
                        step_name=m.get("step_name") or "",
                        tres_usage_in_tot=m.get("tres_usage_in_tot"),
                        tres_usage_out_tot=m.get("tres_usage_out_tot"),
                    )
                )
        return {
            k: tuple(sorted(v, key=lambda s: (s.id_step, s.step_het_comp))) for k, v in out.items()
        }

    def _job(self, cluster: str, info: _Cluster, r: Row[Any], steps: Iterable[DbStep]) -> DbJob:
        m = r._mapping
        assoc = info.assoc_rows.get(_int(m.get("id_assoc"), -1))
        return DbJob(
            cluster=cluster,
            job_db_inx=int(m["job_db_inx"]),
            id_job=int(m["id_job"]),
            time_submit=_int(m["time_submit"], 0),
            state=_int(m.get("state"), 0),
            tres_alloc=m.get("tres_alloc"),
            account=m.get("account") or (assoc[1] if assoc else None),
            partition=m.get("partition") or "",
            time_eligible=_int(m.get("time_eligible"), 0),
            time_start=_int(m.get("time_start"), 0),
            time_end=_int(m.get("time_end"), 0),
            exit_code=_int(m.get("exit_code"), 0),
            derived_ec=_int(m.get("derived_ec"), 0),
            id_user=m.get("id_user"),
            id_group=m.get("id_group"),
            id_array_job=_int(m.get("id_array_job"), 0),
            id_array_task=_int(m.get("id_array_task"), NO_VAL),
            het_job_id=_int(m.get("het_job_id"), 0),
            het_job_offset=_int(m.get("het_job_offset"), NO_VAL),
            job_name=m.get("job_name") or "",
            nodelist=m.get("nodelist"),
            nodes_alloc=m.get("nodes_alloc"),
            timelimit=m.get("timelimit"),
            tres_req=m.get("tres_req"),
            qos=self._qos.get(_int(m.get("id_qos"), 0)),
            user=assoc[0] if assoc else None,
            account_path=assoc[2] if assoc else None,
            id_assoc=m.get("id_assoc"),
            sluid=m.get("sluid") or None,
            tres_names=self._tres,
            steps=tuple(steps),
        )


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)

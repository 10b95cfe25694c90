"""Shell: resolve dimension names to ids, inserting new members (idempotent, race-safe)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from warehouse.models import DimAccount, DimCluster, DimPartition, DimQos, DimUser, table_of
from warehouse.sink.batch import FactBatch

_CHUNK = 500


class DimIds(NamedTuple):
    """Surrogate ids of a batch's dimensions, one element per fact."""

    cluster_id: npt.NDArray[np.int64]
    user_id: npt.NDArray[np.int64]
    account_id: npt.NDArray[np.int64]
    partition_id: npt.NDArray[np.int64]
    qos_id: npt.NDArray[np.int64]

    def take(self, rows: npt.NDArray[np.int64]) -> DimIds:
        """The ids of these rows."""
        return DimIds(*(ids[rows] for ids in self))


@dataclass
class DimCache:
    """Ids already committed, per dimension (ids never change once assigned)."""

    clusters: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # id, lineage
    partitions: dict[tuple[int, str], int] = field(default_factory=dict)
    qos: dict[str, int] = field(default_factory=dict)

    def update(self, other: DimCache) -> None:
        """Take ``other``'s ids (call after the transaction that made them committed)."""
        self.clusters.update(other.clusters)
        self.users.update(other.users)
        self.accounts.update(other.accounts)
        self.partitions.update(other.partitions)
        self.qos.update(other.qos)


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT (with ON CONFLICT support) for ``table``."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _ensure_names(
    conn: Connection, table: Table, rows: dict[str, dict[str, Any]], known: dict[str, int]
) -> dict[str, int]:
    """Ids of ``rows`` (name -> extra columns), inserting missing names."""
    missing = sorted(name for name in rows if name not in known)
    found: dict[str, int] = {}
    if missing:
        conn.execute(
            insert_for(conn, table).on_conflict_do_nothing(index_elements=["name"]),
            [{"name": name, **rows[name]} for name in missing],
        )
        for chunk in _chunks(missing):
            query = select(table.c.name, table.c.id).where(table.c.name.in_(chunk))
            found.update({name: id_ for name, id_ in conn.execute(query)})
    return found


def _ids(names: list[Any], known: dict[Any, int]) -> npt.NDArray[np.int64]:
    return np.fromiter(map(known.__getitem__, names), dtype=np.int64, count=len(names))


class _Known(dict[Any, int]):
    """Ids learnt in this batch, falling back to the cache (no copy of the whole cache)."""

    def __init__(self, new: dict[Any, int], cached: dict[Any, int]) -> None:
        super().__init__(new)
        self.cached = cached

    def __missing__(self, key: Any) -> int:
        return self.cached[key]


def _known(new: dict[Any, int], cached: dict[Any, int]) -> dict[Any, int]:
    return _Known(new, cached) if new else cached


def resolve(conn: Connection, batch: FactBatch, cache: DimCache) -> tuple[DimIds, DimCache]:
    """Ids for every fact's dimensions, and the ids this call learnt (to cache on commit)."""
    v = batch.values
    learnt = DimCache()
    clusters = _ensure_names(
        conn, table_of(DimCluster), {n: {} for n in set(v["cluster"])}, cache.clusters
    )
    learnt.clusters.update(clusters)
    uids = dict(zip(v["user"], v["uid"], strict=True))  # last uid seen in the batch
    users = _ensure_names(
        conn, table_of(DimUser), {u: {"uid": uid} for u, uid in uids.items()}, cache.users
    )
    learnt.users.update(users)
    qos = _ensure_names(conn, table_of(DimQos), {n: {} for n in set(v["qos"])}, cache.qos)
    learnt.qos.update(qos)
    accounts = _ensure_accounts(conn, v, cache, learnt)
    cluster_ids = _known(clusters, cache.clusters)
    cluster_col = _ids(v["cluster"], cluster_ids)
    pairs = list(zip(cluster_col.tolist(), v["partition"], strict=True))
    partitions = _ensure_partitions(conn, set(pairs), cache)
    learnt.partitions.update(partitions)
    ids = DimIds(
        cluster_id=cluster_col,
        user_id=_ids(v["user"], _known(users, cache.users)),
        account_id=_ids(v["account"], accounts),
        partition_id=_ids(pairs, _known(partitions, cache.partitions)),
        qos_id=_ids(v["qos"], _known(qos, cache.qos)),
    )
    return ids, learnt


def _ensure_accounts(
    conn: Connection, v: dict[str, list[Any]], cache: DimCache, learnt: DimCache
) -> dict[str, int]:
    """Account ids; a new lineage (the account moved in the tree) updates the member."""
    table = table_of(DimAccount)
    rows: dict[str, dict[str, Any]] = {}
    for account, parent, lineage in zip(
        v["account"], v["account_parent"], v["account_lineage"], strict=True
    ):  # the last lineage seen in the batch wins
        if lineage is not None or account not in rows:
            rows[account] = {"parent_name": parent, "lineage": lineage}
    out: dict[str, int] = {}
    todo = []
    for name, extra in sorted(rows.items()):
        cached = cache.accounts.get(name)
        if cached is not None and (extra["lineage"] is None or extra["lineage"] == cached[1]):
            out[name] = cached[0]
        else:
            todo.append({"name": name, **extra})
    if todo:
        stmt = insert_for(conn, table)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"parent_name": stmt.excluded.parent_name, "lineage": stmt.excluded.lineage},
                where=stmt.excluded.lineage.is_not(None)
                & table.c.lineage.is_distinct_from(stmt.excluded.lineage),
            ),
            todo,
        )
        for chunk in _chunks([r["name"] for r in todo]):
            query = select(table.c.name, table.c.id, table.c.lineage).where(table.c.name.in_(chunk))
            for name, id_, lineage in conn.execute(query):
                out[name] = id_
                learnt.accounts[name] = (id_, lineage)
    return out


def _ensure_partitions(
    conn: Connection, wanted: set[tuple[int, str]], cache: DimCache
) -> dict[tuple[int, str], int]:
    table = table_of(DimPartition)
    missing = sorted(p for p in wanted if p not in cache.partitions)
    found: dict[tuple[int, str], int] = {}
    if missing:
        conn.execute(
            insert_for(conn, table).on_conflict_do_nothing(index_elements=["cluster_id", "name"]),
            [{"cluster_id": c, "name": n} for c, n in missing],
        )
        for chunk in _chunks(missing):
            query = select(table.c.cluster_id, table.c.name, table.c.id).where(
                tuple_(table.c.cluster_id, table.c.name).in_(chunk)
            )
            found.update({(c, n): i for c, n, i in conn.execute(query)})
    return found

"""A ``CreditStore`` that answers checks from in-process state (no database round trip on
the hot path) and writes through ``SqlCreditStore``.

State, loaded when the store starts and swapped whole on refresh:
  * roll-up days of every user (the past window) and account (from the start of last year),
    and the open reservations and adjustments of the ledger (``jobcarbon.credit.snapshot``);
  * a history index: the usable columns of every fact that passes the SQL history filter,
    with per (user, partition), (account, partition) and partition orders by end time, so
    the prediction sees exactly the rows the SQL history query returns.

Staleness bound (docs/credit.md):
  * ledger entries written through the API (reservations, adjustments, sweeps), from any
    worker process of the server: visible to the next check. Each write bumps a shared
    generation counter (a small file all workers of one ``credit serve`` share); a check that
    sees a new generation first reads the ledger entries it has not seen;
  * ledger entries written elsewhere (``jobcarbon credit sweep``, another API host): within
    ``ledger_poll_s`` (1 s);
  * facts landing (roll-ups, a reservation's job landing, prediction history): within
    ``refresh_s`` (30 s) for usage, ``history_refresh_s`` (300 s) for prediction.
Anything the state does not cover (per-user allocations, windows before the loaded days) is
answered by the warehouse as before.
"""

from __future__ import annotations

import fcntl
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from jobcarbon.credit.check import Usage
from jobcarbon.credit.policy import previous_period_start
from jobcarbon.credit.predict import (
    HISTORY_LIMIT,
    HistoryColumns,
    JobRequest,
    LevelRows,
    PastJob,
    Prediction,
    level_rows,
    per_unit_rate,
    predict_level,
    usable_columns,
)
from jobcarbon.credit.snapshot import (
    Adjustment,
    DaySeries,
    LedgerState,
    OpenReservation,
    RollupState,
    micros,
    usage_from,
)
from jobcarbon.credit.sql import MATCH_WINDOW_S, SqlCreditStore
from jobcarbon.credit.store import LedgerEntry, UsageQuery

log = logging.getLogger("jobcarbon.credit.memory")

#: Rows converted per call while loading state: the conversion (psycopg, SQLAlchemy) is C
#: that keeps the GIL, so a whole 140k-row roll-up result at once stalled the worker's event
#: loop for ~75-200 ms (every check then waited); 5 000 rows take a few milliseconds.
CHUNK_ROWS: Final = 5_000

#: Requests whose similar jobs an index keeps (``HistoryIndex.predict``; then it starts over).
MAX_CACHED_LEVELS: Final = 100_000
_UNSEEN: Final = object()

#: Ids are handed out before commit, so a later id can commit first: each ledger read looks
#: back this many ids (entries are keyed by id, replays are harmless).
LOOKBACK_IDS: Final = 1_000

_USER_DAYS_SQL = text(
    """
SELECT u.name, d.day, COALESCE(d.co2e_g, 0), COALESCE(d.energy_facility_j, 0)
FROM rollup_user_day d JOIN dim_user u ON u.id = d.user_id
WHERE d.day >= :since ORDER BY u.name, d.day
"""
)
# PostgreSQL: one row per user (account) with its days as arrays, built by the server and
# turned into lists by psycopg's C loaders: 5k rows instead of 140k for Python to walk
# (usage reload at 1M facts: 0.9 -> see bench/README.md). Days as date ordinals.
_SERIES_PG = """
SELECT {dim}.name, array_agg(d.day - DATE '0001-01-01' + 1 ORDER BY d.day),
       array_agg(COALESCE(d.co2e_g, 0)::float8 ORDER BY d.day),
       array_agg(COALESCE(d.energy_facility_j, 0)::float8 ORDER BY d.day)
FROM {table} d JOIN {dim_table} {dim} ON {dim}.id = d.{key}
WHERE d.day >= :since GROUP BY {dim}.name
"""
_USER_SERIES_PG = text(
    _SERIES_PG.format(dim="u", table="rollup_user_day", dim_table="dim_user", key="user_id")
)
_ACCOUNT_SERIES_PG = text(
    _SERIES_PG.format(
        dim="a", table="rollup_account_day", dim_table="dim_account", key="account_id"
    )
)
_ACCOUNT_DAYS_SQL = text(
    """
SELECT a.name, d.day, COALESCE(d.co2e_g, 0), COALESCE(d.energy_facility_j, 0)
FROM rollup_account_day d JOIN dim_account a ON a.id = d.account_id
WHERE d.day >= :since ORDER BY a.name, d.day
"""
)
_MAX_ID_SQL = text("SELECT COALESCE(MAX(id), 0) FROM credit_ledger")
# Open reservations (as in jobcarbon.credit.sql: no entry names them) and whether their
# job has landed in fact_job; landed ones are counted by the roll-ups instead.
_OPEN_SQL = text(
    """
SELECT r.id, r.user_name, r.account, r.amount_g, r.created_at,
       EXISTS (SELECT 1 FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id
               WHERE c.name = r.cluster AND f.job_id = r.job_id
                 AND f.submit_epoch BETWEEN r.submit_epoch - :match_s
                                        AND r.submit_epoch + :match_s) AS landed
FROM credit_ledger r
WHERE r.entry_type = 'reservation' AND r.id > :after
  AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
"""
)
_CLOSED_SQL = text(
    "SELECT reservation_id FROM credit_ledger WHERE id > :after AND reservation_id IS NOT NULL"
)
_ADJUST_SQL = text(
    """
SELECT id, user_name, account, amount_g, created_at FROM credit_ledger
WHERE entry_type = 'adjustment' AND id > :after
"""
)
_HISTORY_SQL = text(
    """
SELECT f.id, f.user_id, f.account_id, f.partition_id, COALESCE(f.job_name, ''),
       COALESCE(f.node_count, 0), COALESCE(f.cpus, 0), f.time_limit_s, f.elapsed_s,
       f.energy_it_j, COALESCE(f.shared_node, FALSE), COALESCE(f.end_epoch, -1)
FROM fact_job f
WHERE f.energy_it_j > 0 AND f.elapsed_s > 0 AND f.time_limit_s > 0
"""
)
_PAIRS_SQL = text(
    "SELECT DISTINCT u.name, a.name FROM fact_job f "
    "JOIN dim_user u ON u.id = f.user_id JOIN dim_account a ON a.id = f.account_id"
)
_DIMS_SQL = text(
    """
SELECT 'u', name, id FROM dim_user
UNION ALL SELECT 'a', name, id FROM dim_account
UNION ALL SELECT 'p', p.name, p.id FROM dim_partition p JOIN dim_cluster c ON c.id = p.cluster_id
          WHERE c.name = :cluster
"""
)


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite keeps ISO text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _day(value: Any) -> int:
    return (date.fromisoformat(value) if isinstance(value, str) else value).toordinal()


class Generation:
    """A counter every worker process of one server shares (a file, ``path``), bumped after
    each ledger write; without a path, a counter in this process."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._local = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None

    def read(self) -> int:
        if self._fd is None:
            return self._local
        raw = os.pread(self._fd, 8, 0)
        return int.from_bytes(raw, "little") if len(raw) == 8 else 0

    def bump(self) -> None:
        if self._fd is None:
            self._local += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            os.pwrite(self._fd, (self.read() + 1).to_bytes(8, "little"), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class _Groups:
    """The ``limit`` most recent jobs of each group (a user, an account, or every job, in a
    partition) that prediction can use, stored group after group: ``block[:, a:b]`` is the
    group of ``slices[key] == (a, b)``, rows ``_ROWS``."""

    block: npt.NDArray[np.float64]
    slices: dict[tuple[int, int], tuple[int, int]]


#: Rows of a ``_Groups.block`` (ids as float64: exact below 2**53).
_ROWS: Final = ("user_id", "account_id", "name_id", "rate", "runtime_ratio", "shared")


class HistoryIndex:
    """The facts the SQL history query reads, as columns, with each group's most recent
    usable jobs stored together (a check reads three short contiguous slices)."""

    def __init__(
        self,
        chunks: Iterable[Sequence[Any]],
        dims: list[tuple[str, str, int]],
        pairs: set[tuple[str, str]] | None = None,
        limit: int = HISTORY_LIMIT,
    ) -> None:
        """``chunks``: batches of ``_HISTORY_SQL`` rows (turned into columns batch by batch,
        so loading never holds all rows as Python objects at once); ``limit``: jobs per
        group, the ``limit`` of the checks this index answers."""
        #: (user, account) pairs seen in any fact (``uses_account``).
        self.pairs = pairs or set()
        self.limit = limit
        self._levels: dict[tuple[str, str, str, str], LevelRows | None] = {}
        self.users = {n: i for k, n, i in dims if k == "u"}
        self.accounts = {n: i for k, n, i in dims if k == "a"}
        self.partitions = {n: i for k, n, i in dims if k == "p"}
        self.names: dict[str, int] = {}
        names = self.names
        parts: list[list[npt.NDArray[Any]]] = []
        for rows in chunks:
            cols = list(zip(*rows, strict=True))
            if not cols:
                continue
            # Job names to ids: a Python step per distinct name, C (map) per row.
            ids = {n: names.setdefault(n, len(names)) for n in dict.fromkeys(cols[4])}
            parts.append(
                [np.array(cols[i], dtype=np.int64) for i in range(4)]
                + [np.fromiter(map(ids.__getitem__, cols[4]), np.int64, len(cols[4]))]
                + [np.array(cols[i], dtype=np.float64) for i in range(5, 10)]
                + [np.array(cols[10], dtype=bool), np.array(cols[11], dtype=np.int64)]
            )
        types = [np.int64] * 5 + [np.float64] * 5 + [np.bool_, np.int64]
        columns = [
            np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=t)
            for i, t in enumerate(types)
        ]
        fid, user_id, account_id, pid, name_id = columns[:5]
        measures = columns[5:10]
        shared, end = columns[10], columns[11]
        nodes, cpus, time_limit_s, elapsed_s, energy_it_j = measures
        usable = usable_columns(nodes, cpus, time_limit_s, elapsed_s, energy_it_j)
        rate, ratio = per_unit_rate(nodes, cpus, time_limit_s, elapsed_s, energy_it_j, shared)
        table = np.stack([user_id, account_id, name_id, rate, ratio, shared]).astype(np.float64)
        zeros = np.zeros(len(fid), dtype=np.int64)
        self.by_user = self._group(user_id, pid, end, fid, usable, table)
        self.by_account = self._group(account_id, pid, end, fid, usable, table)
        self.by_partition = self._group(zeros, pid, end, fid, usable, table)

    def _group(
        self,
        key: npt.NDArray[np.int64],
        pid: npt.NDArray[np.int64],
        end: npt.NDArray[np.int64],
        fid: npt.NDArray[np.int64],
        usable: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.float64],
    ) -> _Groups:
        """Per (key, partition): its ``limit`` most recent facts (end time, then id,
        descending: the SQL history query's order), then the usable ones among them."""
        order = np.lexsort((-fid, -end, pid, key))
        if len(order) == 0:
            return _Groups(np.zeros((len(_ROWS), 0)), {})
        k, p = key[order], pid[order]
        starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (p[1:] != p[:-1])])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = (rank < self.limit) & usable[order]
        kept = order[keep]
        # Group boundaries in the kept rows: groups are contiguous and keep their order.
        group = np.cumsum(np.r_[True, (k[1:] != k[:-1]) | (p[1:] != p[:-1])])[keep]
        firsts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        stops = np.r_[firsts[1:], len(kept)]
        kk, pp = key[kept[firsts]], pid[kept[firsts]]
        slices = {
            (int(a), int(b)): (int(s), int(e))
            for a, b, s, e in zip(kk, pp, firsts, stops, strict=True)
        }
        return _Groups(np.ascontiguousarray(rows[:, kept]), slices)

    def predict(self, request: JobRequest) -> Prediction:
        """``predict_columns`` over ``columns``, with the similar jobs found (they do not
        depend on the request's size) kept per (user, account, partition, job name) until
        the index is replaced: a repeated submission costs a few multiplications."""
        key = (request.user, request.account, request.partition, request.job_name)
        rows = self._levels.get(key, _UNSEEN)
        if rows is _UNSEEN:
            rows = level_rows(self.columns(request))
            if len(self._levels) >= MAX_CACHED_LEVELS:
                self._levels.clear()
            self._levels[key] = rows
        return predict_level(request, rows)  # type: ignore[arg-type]

    def columns(self, request: JobRequest) -> HistoryColumns:
        """The usable rows among the user's, the account's and the partition's ``limit``
        most recent jobs in the partition (duplicates kept, as UNION ALL does)."""
        pid = self.partitions.get(request.partition)
        uid = self.users.get(request.user, -1)
        aid = self.accounts.get(request.account, -1)
        blocks = []
        if pid is not None:
            for groups, key in (
                (self.by_user, (uid, pid)),
                (self.by_account, (aid, pid)),
                (self.by_partition, (0, pid)),
            ):
                span = groups.slices.get(key)
                if span is not None:
                    blocks.append(groups.block[:, span[0] : span[1]])
        if len(blocks) == 1:
            block = blocks[0]
        elif blocks:
            block = np.concatenate(blocks, axis=1)
        else:
            block = np.zeros((len(_ROWS), 0))
        user_id, account_id, name_id, rate, ratio, shared = block
        user = user_id == uid
        return HistoryColumns(
            user_match=user,
            name_match=user & (name_id == self.names.get(request.job_name, -2)),
            account_match=account_id == aid,
            shared=shared != 0.0,
            rate=rate,
            runtime_ratio=ratio,
        )


class MemoryCreditStore:
    """``CreditStore`` over in-process state, refreshed by a background thread."""

    def __init__(
        self,
        sql: SqlCreditStore,
        *,
        clock: Callable[[], datetime],
        past_window_days: Callable[[], float],
        generation: Generation | None = None,
        refresh_s: float = 30.0,
        history_refresh_s: float = 300.0,
        ledger_poll_s: float = 1.0,
        background: bool = True,
    ) -> None:
        self.sql = sql
        self.clock = clock
        self.past_window_days = past_window_days
        self.generation = generation or Generation(None)
        self.refresh_s, self.history_refresh_s = refresh_s, history_refresh_s
        self.ledger_poll_s = ledger_poll_s
        self._lock = threading.Lock()
        self._seen = self.generation.read()
        # None until loaded: meanwhile every check is answered by the warehouse.
        self._rollups: RollupState | None = None
        self._ledger, self._last_id = LedgerState(), 0
        self._history: HistoryIndex | None = None
        try:
            self.refresh(history=True)
        except Exception:  # the warehouse may be down at start: serve, load on a later tick
            log.exception("credit state not loaded; answering from the warehouse meanwhile")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="credit-refresh", daemon=True)
            self._thread.start()

    # -- loading ---------------------------------------------------------------------------
    def _load_usage(self) -> tuple[RollupState, LedgerState, int]:
        now = self.clock()
        user_since = (now - timedelta(days=self.past_window_days() + 1)).date()
        account_since = previous_period_start("year", now).date()
        with self.sql._read.connect() as conn:
            last = int(conn.execute(_MAX_ID_SQL).scalar_one())
            if conn.dialect.name == "postgresql":
                users = _arrays(conn.execute(_USER_SERIES_PG, {"since": user_since}))
                accounts = _arrays(conn.execute(_ACCOUNT_SERIES_PG, {"since": account_since}))
            else:
                users = _series(conn.execute(_USER_DAYS_SQL, {"since": user_since}))
                accounts = _series(conn.execute(_ACCOUNT_DAYS_SQL, {"since": account_since}))
            ledger = LedgerState()
            ledger.apply(*self._read_ledger(conn, after=0))
        rollups = RollupState(user_since.toordinal(), account_since.toordinal(), users, accounts)
        return rollups, ledger, last

    @staticmethod
    def _read_ledger(
        conn: Any, after: int
    ) -> tuple[list[OpenReservation], list[int], list[Adjustment]]:
        """Entries with ids above ``after``, as ``LedgerState.apply`` takes them."""
        rows = conn.execute(_OPEN_SQL, {"after": after, "match_s": MATCH_WINDOW_S}).all()
        closed = [int(r[0]) for r in conn.execute(_CLOSED_SQL, {"after": after}).all()]
        closed += [int(r[0]) for r in rows if r[5]]  # landed: the roll-ups count it
        opened = [
            OpenReservation(int(r[0]), r[1], r[2], float(r[3]), micros(_aware(r[4])))
            for r in rows
            if not r[5]
        ]
        adjustments = [
            Adjustment(int(r[0]), r[1], r[2], float(r[3]), micros(_aware(r[4])))
            for r in conn.execute(_ADJUST_SQL, {"after": after}).all()
        ]
        return opened, closed, adjustments

    def _load_history(self) -> HistoryIndex:
        with self.sql.engine.connect() as conn:  # a transaction: the cursor streams
            dims = [tuple(r) for r in conn.execute(_DIMS_SQL, {"cluster": self.sql.cluster})]
            pairs = {(r[0], r[1]) for r in conn.execute(_PAIRS_SQL)}
            stream = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS).execute(
                _HISTORY_SQL
            )
            return HistoryIndex(stream.partitions(CHUNK_ROWS), dims, pairs)

    def _delta(self) -> tuple[int, tuple[list[OpenReservation], list[int], list[Adjustment]]]:
        with self.sql._read.connect() as conn:
            last = int(conn.execute(_MAX_ID_SQL).scalar_one())
            return last, self._read_ledger(conn, after=max(0, self._last_id - LOOKBACK_IDS))

    def sync_ledger(self) -> None:
        """Read ledger entries written since the last read (with a look-back), outside the
        lock; apply them under it (applying an older read again changes nothing)."""
        last, delta = self._delta()
        with self._lock:
            self._ledger.apply(*delta)
            self._last_id = max(self._last_id, last)

    def refresh(self, history: bool = False) -> None:
        """Reload roll-ups and the ledger (and the history index) and swap them in; entries
        written while loading are read before any check sees the new state."""
        with _collector_paused():
            rollups, ledger, last = self._load_usage()
            index = self._load_history() if history or self._history is None else None
        with self._lock:
            self._rollups, self._ledger, self._last_id = rollups, ledger, last
            if index is not None:
                self._history = index
            last, delta = self._delta()
            self._ledger.apply(*delta)
            self._last_id = max(self._last_id, last)

    def _loop(self) -> None:
        usage_at = history_at = time.monotonic()
        while not self._stop.wait(self.ledger_poll_s):
            try:
                now = time.monotonic()
                if self._rollups is None or self._history is None:
                    self.refresh(history=True)
                    usage_at = history_at = now
                elif now - usage_at >= self.refresh_s:
                    due = now - history_at >= self.history_refresh_s
                    self.refresh(history=due)
                    usage_at = now
                    history_at = now if due else history_at
                else:
                    self.sync_ledger()
            except Exception:  # the warehouse may be down: keep serving, retry next tick
                log.exception("credit state refresh failed")

    def close(self) -> None:
        """Stop the refresh thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _fresh(self) -> None:
        seen = self.generation.read()
        if seen != self._seen and self._rollups is not None:
            self.sync_ledger()
            self._seen = seen

    # -- CreditStore -----------------------------------------------------------------------
    def usage(self, query: UsageQuery) -> Usage:
        """From in-process state when it covers the query, else from the warehouse."""
        self._fresh()
        with self._lock:
            rollups = self._rollups
            usage = usage_from(rollups, self._ledger, query) if rollups is not None else None
        return usage if usage is not None else self.sql.usage(query)

    def predict(self, request: JobRequest, limit: int) -> Prediction:
        """The prediction from the in-process history index (the warehouse's until loaded)."""
        index = self._history
        if index is None or limit != index.limit:
            return self.sql.predict(request, limit)
        return index.predict(request)

    def history(self, user: str, account: str, partition: str, limit: int) -> list[PastJob]:
        return self.sql.history(user, account, partition, limit)

    def uses_account(self, user: str, account: str) -> bool:
        """Known pairs from the index; anything else is asked of the warehouse (a user who
        just started in an account, or a refusal)."""
        index = self._history
        known = index is not None and (user, account) in index.pairs
        return known or self.sql.uses_account(user, account)

    def _wrote(self) -> None:
        self.generation.bump()
        if self._rollups is not None:
            self.sync_ledger()

    def reserve(self, **kwargs: Any) -> tuple[int, bool]:
        """Append through the warehouse, then make it visible to every worker."""
        out = self.sql.reserve(**kwargs)
        self._wrote()
        return out

    def adjust(self, **kwargs: Any) -> int:
        out = self.sql.adjust(**kwargs)
        self._wrote()
        return out

    def sweep(self, **kwargs: Any) -> tuple[int, int]:
        out = self.sql.sweep(**kwargs)
        self._wrote()
        return out

    def ledger(self, *, account: str | None, user: str | None, limit: int) -> list[LedgerEntry]:
        return self.sql.ledger(account=account, user=user, limit=limit)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while state loads, and the loaded state frozen out of
    the collector after. Loading allocates millions of short-lived rows: at 1M facts the
    collector ran 30 full passes during a history load (4.5 s of its 12 s, up to 236 ms
    each, holding the GIL: the worker's event loop stood still that long). The state has
    no reference cycles; what it replaces is freed by reference counting."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _arrays(result: Any) -> dict[str, DaySeries]:
    """Day series by name from a ``_SERIES_PG`` result (arrays already in day order)."""
    rows = itertools.chain.from_iterable(result.partitions(CHUNK_ROWS // 50))
    return {name: DaySeries(days, co2e, energy) for name, days, co2e, energy in rows}


def _series(result: Any) -> dict[str, DaySeries]:
    """Day series by name from a roll-up query's result, read ``CHUNK_ROWS`` at a time."""
    out: dict[str, DaySeries] = {}
    for name, day, co2e, energy in itertools.chain.from_iterable(result.partitions(CHUNK_ROWS)):
        s = out.get(name)
        if s is None:
            s = out[name] = DaySeries([], [], [])
        s.days.append(_day(day))
        s.co2e_g.append(float(co2e))
        s.energy_facility_j.append(float(energy))
    return out

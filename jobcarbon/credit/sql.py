"""``CreditStore`` over the warehouse (PostgreSQL or SQLite): roll-up sums, recent similar
jobs and append-only ledger entries. Every statement is constant SQL with bound parameters.

Usage is read from roll-ups (``rollup_user_day``, ``rollup_account_day``: a few dozen rows
per check) and from the user's or account's open reservations, never by summing facts. A
reservation is open while no settlement or release names it, it is younger than the stale
limit, and its job has not landed in ``fact_job`` yet (so a job is never counted twice
between landing and the next sweep).
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from jobcarbon.credit.check import Usage
from jobcarbon.credit.predict import JobRequest, PastJob, Prediction, predict
from jobcarbon.credit.store import LedgerEntry, UsageQuery

#: A reservation's job matches a fact submitted within this many seconds of the reservation.
MATCH_WINDOW_S: Final = 3_600

_USAGE_SQL = text(
    """
SELECT
  (SELECT COALESCE(SUM(d.co2e_g), 0) FROM rollup_user_day d
     WHERE d.user_id = (SELECT id FROM dim_user WHERE name = :user) AND d.day >= :past_day)
     AS past_co2e_g,
  (SELECT COALESCE(SUM(d.energy_facility_j), 0) FROM rollup_user_day d
     WHERE d.user_id = (SELECT id FROM dim_user WHERE name = :user) AND d.day >= :past_day)
     AS past_energy_facility_j,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.user_name = :user
    AND r.entry_type = 'reservation' AND r.created_at >= :open_since
    AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
    AND NOT EXISTS (SELECT 1 FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id
            WHERE c.name = r.cluster AND f.job_id = r.job_id
              AND f.submit_epoch BETWEEN r.submit_epoch - :match_s
                                     AND r.submit_epoch + :match_s)) AS running_co2e_g,
  (SELECT COALESCE(SUM(d.co2e_g), 0) FROM rollup_account_day d
     WHERE d.account_id = (SELECT id FROM dim_account WHERE name = :account)
       AND d.day >= :period_day) AS account_settled_g,
  (SELECT COALESCE(SUM(d.co2e_g), 0) FROM rollup_account_day d
     WHERE d.account_id = (SELECT id FROM dim_account WHERE name = :account)
       AND d.day >= :prev_day AND d.day < :period_day) AS account_prev_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account
    AND r.entry_type = 'reservation' AND r.created_at >= :open_since
    AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
    AND NOT EXISTS (SELECT 1 FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id
            WHERE c.name = r.cluster AND f.job_id = r.job_id
              AND f.submit_epoch BETWEEN r.submit_epoch - :match_s
                                     AND r.submit_epoch + :match_s)) AS account_open_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account AND r.user_name IS NULL AND r.entry_type = 'adjustment'
       AND r.created_at >= :period_start) AS account_adjust_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account AND r.user_name IS NULL AND r.entry_type = 'adjustment'
       AND r.created_at >= :prev_start AND r.created_at < :period_start) AS account_prev_adjust_g
"""
)

# Per-user allocations inside an account: no user x account roll-up exists, so sum the
# user's facts in the account by end time (index ix_fact_job_user_account_end).
_USER_SCOPE_SQL = text(
    """
SELECT
  (SELECT COALESCE(SUM(f.co2e_g), 0) FROM fact_job f
     WHERE f.user_id = (SELECT id FROM dim_user WHERE name = :user)
       AND f.account_id = (SELECT id FROM dim_account WHERE name = :account)
       AND f.end_at >= :period_start) AS settled_g,
  (SELECT COALESCE(SUM(f.co2e_g), 0) FROM fact_job f
     WHERE f.user_id = (SELECT id FROM dim_user WHERE name = :user)
       AND f.account_id = (SELECT id FROM dim_account WHERE name = :account)
       AND f.end_at >= :prev_start AND f.end_at < :period_start) AS prev_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account AND r.user_name = :user
    AND r.entry_type = 'reservation' AND r.created_at >= :open_since
    AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
    AND NOT EXISTS (SELECT 1 FROM fact_job f JOIN dim_cluster c ON c.id = f.cluster_id
            WHERE c.name = r.cluster AND f.job_id = r.job_id
              AND f.submit_epoch BETWEEN r.submit_epoch - :match_s
                                     AND r.submit_epoch + :match_s)) AS open_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account AND r.user_name = :user AND r.entry_type = 'adjustment'
       AND r.created_at >= :period_start) AS adjust_g,
  (SELECT COALESCE(SUM(r.amount_g), 0) FROM credit_ledger r
     WHERE r.account = :account AND r.user_name = :user AND r.entry_type = 'adjustment'
       AND r.created_at >= :prev_start AND r.created_at < :period_start) AS prev_adjust_g
"""
)

# One round trip: the user's, the account's and the partition's most recent usable jobs in
# the partition (each an index range scan: ix_fact_job_{user,account,}_partition_end; ties
# broken by id, as the in-process index in jobcarbon.credit.memory does).
_HISTORY_SQL = text(
    """
(SELECT f.user_id, f.account_id, f.job_name, f.node_count, f.cpus,
       f.time_limit_s, f.elapsed_s, f.energy_it_j, f.shared_node, f.end_at
FROM fact_job f
WHERE f.user_id = :user_id AND f.partition_id = :pid
  AND f.energy_it_j > 0 AND f.elapsed_s > 0 AND f.time_limit_s > 0
ORDER BY f.end_at DESC, f.id DESC LIMIT :limit)
UNION ALL
(SELECT f.user_id, f.account_id, f.job_name, f.node_count, f.cpus,
       f.time_limit_s, f.elapsed_s, f.energy_it_j, f.shared_node, f.end_at
FROM fact_job f
WHERE f.account_id = :account_id AND f.partition_id = :pid
  AND f.energy_it_j > 0 AND f.elapsed_s > 0 AND f.time_limit_s > 0
ORDER BY f.end_at DESC, f.id DESC LIMIT :limit)
UNION ALL
(SELECT f.user_id, f.account_id, f.job_name, f.node_count, f.cpus,
       f.time_limit_s, f.elapsed_s, f.energy_it_j, f.shared_node, f.end_at
FROM fact_job f
WHERE f.partition_id = :pid
  AND f.energy_it_j > 0 AND f.elapsed_s > 0 AND f.time_limit_s > 0
ORDER BY f.end_at DESC, f.id DESC LIMIT :limit)
"""
)
_IDS_SQL = text(
    """
SELECT (SELECT id FROM dim_user WHERE name = :user) AS user_id,
       (SELECT id FROM dim_account WHERE name = :account) AS account_id,
       (SELECT p.id FROM dim_partition p JOIN dim_cluster c ON c.id = p.cluster_id
         WHERE c.name = :cluster AND p.name = :partition) AS pid
"""
)
# One index probe (ix_fact_job_user_account_end), whatever the user's history size.
_USES_ACCOUNT_SQL = text(
    """
SELECT 1 FROM fact_job f
WHERE f.user_id = (SELECT id FROM dim_user WHERE name = :user)
  AND f.account_id = (SELECT id FROM dim_account WHERE name = :account)
LIMIT 1
"""
)
_INSERT_SQL = text(
    """
INSERT INTO credit_ledger (entry_type, account, user_name, cluster, job_id, submit_epoch,
                           reservation_id, amount_g, created_at, actor, note, idempotency_key)
VALUES (:entry_type, :account, :user, :cluster, :job_id, :submit_epoch, :reservation_id,
        :amount_g, :created_at, :actor, :note, :key)
RETURNING id
"""
)
_BY_KEY_SQL = text("SELECT id FROM credit_ledger WHERE idempotency_key = :key")
_SETTLE_SQL = text(
    """
INSERT INTO credit_ledger (entry_type, account, user_name, cluster, job_id, submit_epoch,
                           reservation_id, amount_g, created_at, actor, note, idempotency_key)
SELECT 'settlement', r.account, r.user_name, r.cluster, r.job_id, MIN(f.submit_epoch), r.id,
       COALESCE(SUM(f.co2e_g), 0), :now, :actor, 'job landed in the warehouse',
       'settle:' || CAST(r.id AS TEXT)
FROM credit_ledger r
JOIN dim_cluster c ON c.name = r.cluster
JOIN fact_job f ON f.cluster_id = c.id AND f.job_id = r.job_id
     AND f.submit_epoch BETWEEN r.submit_epoch - :match_s AND r.submit_epoch + :match_s
WHERE r.entry_type = 'reservation'
  AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
GROUP BY r.id, r.account, r.user_name, r.cluster, r.job_id
"""
)
_RELEASE_SQL = text(
    """
INSERT INTO credit_ledger (entry_type, account, user_name, cluster, job_id, submit_epoch,
                           reservation_id, amount_g, created_at, actor, note, idempotency_key)
SELECT 'release', r.account, r.user_name, r.cluster, r.job_id, r.submit_epoch, r.id,
       -r.amount_g, :now, :actor, 'stale: job never landed', 'release:' || CAST(r.id AS TEXT)
FROM credit_ledger r
WHERE r.entry_type = 'reservation' AND r.created_at < :stale_before
  AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.reservation_id = r.id)
"""
)
_LEDGER_SQL = text(
    """
SELECT id, entry_type, account, user_name, cluster, job_id, reservation_id, amount_g,
       created_at, actor, note
FROM credit_ledger
WHERE (CAST(:account AS TEXT) IS NULL OR account = :account)
  AND (CAST(:user AS TEXT) IS NULL OR user_name = :user)
ORDER BY id DESC LIMIT :limit
"""
)


def _day(at: datetime | None) -> date | None:
    return None if at is None else at.date()


class SqlCreditStore:
    """The credit store over a warehouse engine. Small TTL caches keep per-check lookups
    that rarely change (a user's accounts, dimension ids) off the database."""

    def __init__(self, engine: Engine, *, cluster: str, cache_ttl_s: float = 60.0) -> None:
        self.engine = engine
        # Reads are single statements: autocommit spares a BEGIN and a ROLLBACK round trip.
        self._read = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.cluster = cluster
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._is_pg = engine.dialect.name == "postgresql"

    def _cached(self, key: tuple[Any, ...]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_ttl_s:
            return hit[1]
        return None

    def _remember(self, key: tuple[Any, ...], value: Any) -> Any:
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), value)
        return value

    def _ts(self, at: datetime | None) -> Any:
        # SQLite stores ISO text (warehouse.types.UTCDateTime); PostgreSQL timestamptz.
        if at is None or self._is_pg:
            return at
        return at.isoformat()

    def usage(self, query: UsageQuery) -> Usage:
        """Past, running and period usage from roll-ups and open reservations."""
        prev = query.previous_period_start
        params = {
            "user": query.user,
            "account": query.account,
            "past_day": _day(query.past_from),
            "period_day": _day(query.period_start),
            "prev_day": _day(prev) or _day(query.period_start),
            "period_start": self._ts(query.period_start),
            "prev_start": self._ts(prev or query.period_start),
            "open_since": self._ts(query.open_since),
            "match_s": MATCH_WINDOW_S,
        }
        with self._read.connect() as conn:
            row = conn.execute(_USAGE_SQL, params).mappings().one()
            if query.scope_user:
                scope = conn.execute(_USER_SCOPE_SQL, params).mappings().one()
                used = scope["settled_g"] + scope["open_g"] + scope["adjust_g"]
                previous = scope["prev_g"] + scope["prev_adjust_g"]
            else:
                used = row["account_settled_g"] + row["account_open_g"] + row["account_adjust_g"]
                previous = row["account_prev_g"] + row["account_prev_adjust_g"]
        return Usage(
            past_co2e_g=float(row["past_co2e_g"]),
            past_energy_facility_j=float(row["past_energy_facility_j"]),
            running_co2e_g=float(row["running_co2e_g"]),
            period_used_g=float(used),
            previous_period_used_g=None if prev is None else float(previous),
        )

    def history(self, user: str, account: str, partition: str, limit: int) -> list[PastJob]:
        """The user's, the account's and the partition's most recent usable jobs there
        (cached for ``cache_ttl_s``: history only changes when jobs land)."""
        key = ("history", user, account, partition, limit)
        hit = self._cached(key)
        if hit is not None:
            return list(hit)
        with self._read.connect() as conn:
            ids = self._cached(("ids", user, account, partition))
            if ids is None:
                row = conn.execute(
                    _IDS_SQL,
                    {"user": user, "account": account, "cluster": self.cluster,
                     "partition": partition},
                ).one()  # fmt: skip
                ids = self._remember(("ids", user, account, partition), tuple(row))
            user_id, account_id, pid = ids
            rows = [] if pid is None else conn.execute(
                _HISTORY_SQL,
                {"user_id": user_id or -1, "account_id": account_id or -1, "pid": pid,
                 "limit": limit},
            ).all()  # fmt: skip
        jobs = tuple(
            PastJob(
                # Prediction only asks "same user / same account as the request?".
                user=user if r.user_id == user_id else "",
                account=account if r.account_id == account_id else "",
                partition=partition,
                job_name=r.job_name or "",
                nodes=int(r.node_count or 0),
                cpus=int(r.cpus or 0),
                time_limit_s=int(r.time_limit_s),
                elapsed_s=int(r.elapsed_s),
                energy_it_j=float(r.energy_it_j),
                shared=bool(r.shared_node),
            )
            for r in rows
        )
        return list(self._remember(key, jobs))

    def predict(self, request: JobRequest, limit: int) -> Prediction:
        """``predict`` over ``history`` of the request's user, account and partition."""
        history = self.history(request.user, request.account, request.partition, limit)
        return predict(request, history)

    def uses_account(self, user: str, account: str) -> bool:
        """Whether the user has run jobs under the account (cached)."""
        key = ("uses", user, account)
        hit = self._cached(key)
        if hit is not None:
            return bool(hit)
        with self._read.connect() as conn:
            found = conn.execute(_USES_ACCOUNT_SQL, {"user": user, "account": account}).first()
        return bool(self._remember(key, found is not None))

    def _append(self, conn: Any, **values: Any) -> tuple[int, bool]:
        values["created_at"] = self._ts(values["created_at"])
        savepoint = conn.begin_nested()
        try:
            entry = conn.execute(_INSERT_SQL, values).scalar_one()
            savepoint.commit()
        except IntegrityError:
            savepoint.rollback()
            existing = conn.execute(_BY_KEY_SQL, {"key": values["key"]}).scalar_one_or_none()
            if existing is None:
                raise
            return int(existing), False
        return int(entry), True

    def reserve(
        self,
        *,
        user: str,
        account: str,
        cluster: str,
        job_id: int,
        co2e_g: float,
        now: datetime,
        actor: str,
    ) -> tuple[int, bool]:
        """Append the job's reservation once (key ``reserve:<cluster>:<job_id>``); the
        job's submit time is taken as the reservation time (post-submit runs right after)."""
        with self.engine.begin() as conn:
            return self._append(
                conn,
                entry_type="reservation",
                account=account,
                user=user,
                cluster=cluster,
                job_id=job_id,
                submit_epoch=int(now.timestamp()),
                reservation_id=None,
                amount_g=co2e_g,
                created_at=now,
                actor=actor,
                note="predicted at submission",
                key=f"reserve:{cluster}:{job_id}",
            )

    def adjust(
        self,
        *,
        account: str,
        user: str | None,
        amount_g: float,
        note: str,
        now: datetime,
        actor: str,
    ) -> int:
        """Append an admin adjustment."""
        with self.engine.begin() as conn:
            entry, _ = self._append(
                conn,
                entry_type="adjustment",
                account=account,
                user=user,
                cluster=None,
                job_id=None,
                submit_epoch=None,
                reservation_id=None,
                amount_g=amount_g,
                created_at=now,
                actor=actor,
                note=note,
                key=None,
            )
            return entry

    def sweep(self, *, now: datetime, stale_before: datetime, actor: str) -> tuple[int, int]:
        """Settle reservations whose job landed, then release the stale rest (one
        transaction; idempotency keys make a concurrent sweep harmless)."""
        with self.engine.begin() as conn:
            settled = conn.execute(
                _SETTLE_SQL, {"now": self._ts(now), "actor": actor, "match_s": MATCH_WINDOW_S}
            ).rowcount
            released = conn.execute(
                _RELEASE_SQL,
                {"now": self._ts(now), "actor": actor, "stale_before": self._ts(stale_before)},
            ).rowcount
        return int(settled), int(released)

    def ledger(self, *, account: str | None, user: str | None, limit: int) -> list[LedgerEntry]:
        """Most recent entries first, optionally for one account and/or user."""
        with self._read.connect() as conn:
            rows = conn.execute(
                _LEDGER_SQL, {"account": account, "user": user, "limit": limit}
            ).all()
        return [
            LedgerEntry(
                id=r.id,
                entry_type=r.entry_type,
                account=r.account,
                user=r.user_name,
                cluster=r.cluster,
                job_id=r.job_id,
                reservation_id=r.reservation_id,
                amount_g=float(r.amount_g),
                created_at=_aware(r.created_at),
                actor=r.actor,
                note=r.note,
            )
            for r in rows
        ]


def _aware(value: Any) -> datetime:
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)

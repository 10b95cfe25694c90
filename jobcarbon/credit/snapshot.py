"""The usage numbers of a check from in-process state (pure): per-user and per-account day
roll-ups and the open part of the ledger, as loaded by ``jobcarbon.credit.memory``.

Same rules as the SQL in ``jobcarbon.credit.sql`` (one query per check there): the user's
roll-up days since the past window's first day, the user's open reservations, the account's
roll-up days this period (and last period for carry-over), its open reservations and its
account-wide adjustments. ``usage_from`` answers None when the state does not cover the
query (a window reaching before the loaded days, or a per-user allocation, which needs
facts): the caller then asks the warehouse.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobcarbon.credit.check import Usage
from jobcarbon.credit.store import UsageQuery

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    """An aware timestamp as integer microseconds since the epoch (exact, orderable)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class DaySeries:
    """One user's or account's roll-up days, ascending (``days`` are date ordinals)."""

    days: list[int]
    co2e_g: list[float]
    energy_facility_j: list[float]

    def co2e_between(self, first_day: int, stop_day: int | None = None) -> float:
        """CO2e of days in [first_day, stop_day) (stop None: to the end)."""
        lo = bisect_left(self.days, first_day)
        hi = len(self.days) if stop_day is None else bisect_left(self.days, stop_day)
        return sum(self.co2e_g[lo:hi])

    def energy_since(self, first_day: int) -> float:
        """Facility energy of days from ``first_day`` on."""
        return sum(self.energy_facility_j[bisect_left(self.days, first_day) :])


@dataclass(frozen=True, slots=True)
class RollupState:
    """Roll-up days loaded from ``user_since`` / ``account_since`` (date ordinals) on."""

    user_since: int
    account_since: int
    users: dict[str, DaySeries]
    accounts: dict[str, DaySeries]


@dataclass(frozen=True, slots=True)
class OpenReservation:
    """A reservation no ledger entry settles or releases yet and whose job has not landed."""

    id: int
    user: str | None
    account: str
    amount_g: float
    created_us: int


@dataclass(frozen=True, slots=True)
class Adjustment:
    """An admin adjustment (``user`` None: account-wide)."""

    id: int
    user: str | None
    account: str
    amount_g: float
    created_us: int


@dataclass(slots=True)
class LedgerState:
    """The open reservations and adjustments, indexed for a check; mutated only through
    ``apply`` (entries are keyed by id, so replaying an entry changes nothing)."""

    by_user: dict[str, dict[int, OpenReservation]] = field(default_factory=dict)
    by_account: dict[str, dict[int, OpenReservation]] = field(default_factory=dict)
    adjustments: dict[str, dict[int, Adjustment]] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)

    def apply(
        self,
        opened: list[OpenReservation],
        closed: list[int],
        adjustments: list[Adjustment],
    ) -> None:
        """Add reservations still open, drop those now settled, released or landed, add
        adjustments."""
        self.closed.update(closed)
        for r in opened:
            if r.id in self.closed:
                continue
            if r.user is not None:
                self.by_user.setdefault(r.user, {})[r.id] = r
            self.by_account.setdefault(r.account, {})[r.id] = r
        for rid in closed:
            for index in (self.by_user, self.by_account):
                for entries in index.values():
                    entries.pop(rid, None)
        for a in adjustments:
            self.adjustments.setdefault(a.account, {})[a.id] = a


def _open_g(entries: dict[int, OpenReservation] | None, since_us: int) -> float:
    if not entries:
        return 0.0
    return sum(r.amount_g for r in entries.values() if r.created_us >= since_us)


def _adjust_g(entries: dict[int, Adjustment] | None, first_us: int, stop_us: int | None) -> float:
    if not entries:
        return 0.0
    return sum(
        a.amount_g
        for a in entries.values()
        if a.user is None
        and a.created_us >= first_us
        and (stop_us is None or a.created_us < stop_us)
    )


def usage_from(rollups: RollupState, ledger: LedgerState, query: UsageQuery) -> Usage | None:
    """The usage of ``query`` from in-process state, or None when it is not covered."""
    if query.scope_user:
        return None
    past_day = query.past_from.date().toordinal()
    period_day = query.period_start.date().toordinal()
    prev = query.previous_period_start
    prev_day = prev.date().toordinal() if prev is not None else period_day
    if past_day < rollups.user_since or min(prev_day, period_day) < rollups.account_since:
        return None
    open_since = micros(query.open_since)
    period_us = micros(query.period_start)
    user_days = rollups.users.get(query.user)
    account_days = rollups.accounts.get(query.account)
    adjustments = ledger.adjustments.get(query.account)
    settled = account_days.co2e_between(period_day) if account_days else 0.0
    used = (
        settled
        + _open_g(ledger.by_account.get(query.account), open_since)
        + _adjust_g(adjustments, period_us, None)
    )
    previous = None
    if prev is not None:
        previous = (account_days.co2e_between(prev_day, period_day) if account_days else 0.0) + (
            _adjust_g(adjustments, micros(prev), period_us)
        )
    return Usage(
        past_co2e_g=user_days.co2e_between(past_day) if user_days else 0.0,
        past_energy_facility_j=user_days.energy_since(past_day) if user_days else 0.0,
        running_co2e_g=_open_g(ledger.by_user.get(query.user), open_since),
        period_used_g=used,
        previous_period_used_g=previous,
    )

"""Usage from in-process state, hand-computed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from jobcarbon.credit.snapshot import (
    Adjustment,
    DaySeries,
    LedgerState,
    OpenReservation,
    RollupState,
    micros,
    usage_from,
)
from jobcarbon.credit.store import UsageQuery

NOW = datetime(2026, 5, 20, 12, tzinfo=UTC)


def d(day: str) -> int:
    return date.fromisoformat(day).toordinal()


ROLLUPS = RollupState(
    user_since=d("2026-04-01"),
    account_since=d("2025-01-01"),
    users={
        "alice": DaySeries(
            [d("2026-04-21"), d("2026-04-22"), d("2026-05-19")], [10.0, 20.0, 40.0], [1e6, 2e6, 4e6]
        )
    },
    accounts={
        "proj": DaySeries(
            [d("2026-03-31"), d("2026-04-01"), d("2026-05-19")],
            [100.0, 200.0, 400.0],
            [0.0, 0.0, 0.0],
        )
    },
)


def ledger() -> LedgerState:
    state = LedgerState()
    at = micros(NOW - timedelta(hours=1))
    old = micros(NOW - timedelta(days=8))
    state.apply(
        [
            OpenReservation(1, "alice", "proj", 5.0, at),
            OpenReservation(2, "bob", "proj", 7.0, at),
            OpenReservation(3, "alice", "proj", 1000.0, old),  # stale: not counted
            OpenReservation(4, "alice", "proj", 3.0, at),  # settled below
        ],
        [4],
        [
            Adjustment(5, None, "proj", -50.0, micros(datetime(2026, 4, 2, tzinfo=UTC))),
            Adjustment(6, None, "proj", 11.0, micros(datetime(2026, 3, 2, tzinfo=UTC))),
            Adjustment(7, "alice", "proj", 999.0, at),  # per-user: not the account's
        ],
    )
    return state


def q(past_from: datetime, prev: datetime | None = None, scope_user: bool = False) -> UsageQuery:
    return UsageQuery("alice", "proj", NOW, past_from, datetime(2026, 4, 1, tzinfo=UTC), prev,
                      scope_user, NOW - timedelta(days=7))  # fmt: skip


def test_usage_from_state() -> None:
    u = usage_from(ROLLUPS, ledger(), q(datetime(2026, 4, 22, tzinfo=UTC),
                                        prev=datetime(2026, 1, 1, tzinfo=UTC)))  # fmt: skip
    assert u is not None
    assert u.past_co2e_g == 60.0  # 20 + 40 (the 21st is before the window)
    assert u.past_energy_facility_j == 6e6
    assert u.running_co2e_g == 5.0  # stale 3 and settled 4 are not running
    assert u.period_used_g == 200.0 + 400.0 + 5.0 + 7.0 - 50.0
    assert u.previous_period_used_g == 100.0 + 11.0


def test_replayed_entries_change_nothing() -> None:
    state = ledger()
    state.apply([OpenReservation(4, "alice", "proj", 3.0, micros(NOW))], [], [])  # closed
    state.apply([OpenReservation(1, "alice", "proj", 5.0, micros(NOW))], [], [])  # same id
    u = usage_from(ROLLUPS, state, q(datetime(2026, 4, 22, tzinfo=UTC)))
    assert u is not None and u.running_co2e_g == 5.0 and u.previous_period_used_g is None


def test_not_covered_goes_to_the_warehouse() -> None:
    assert usage_from(ROLLUPS, ledger(), q(datetime(2026, 3, 1, tzinfo=UTC))) is None
    assert usage_from(ROLLUPS, ledger(), q(NOW, prev=datetime(2024, 10, 1, tzinfo=UTC))) is None
    assert usage_from(ROLLUPS, ledger(), q(NOW, scope_user=True)) is None


def test_unknown_user_and_account_use_nothing() -> None:
    query = UsageQuery("zoe", "none", NOW, NOW, NOW, None, False, NOW)
    u = usage_from(ROLLUPS, LedgerState(), query)
    assert u is not None and (u.past_co2e_g, u.running_co2e_g, u.period_used_g) == (0, 0, 0)

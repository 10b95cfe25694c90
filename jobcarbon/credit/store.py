"""What the credit shells need from the warehouse (implemented in ``jobcarbon.credit.sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jobcarbon.credit.check import Usage
from jobcarbon.credit.predict import JobRequest, PastJob, Prediction


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """The windows a check needs, computed by the shell from the policy and ``now``."""

    user: str
    account: str
    now: datetime
    past_from: datetime  # start of the "past" window
    period_start: datetime
    previous_period_start: datetime | None  # None: no carry-over, skip that sum
    scope_user: bool  # the allocation is the user's own (in the account), not the account's
    open_since: datetime  # reservations older than this are stale (not counted)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One append-only ledger row as admins and users see it."""

    id: int
    entry_type: str
    account: str
    user: str | None
    cluster: str | None
    job_id: int | None
    reservation_id: int | None
    amount_g: float
    created_at: datetime
    actor: str
    note: str | None


class CreditStore(Protocol):
    """Warehouse reads and ledger appends for the credit check."""

    def usage(self, query: UsageQuery) -> Usage:
        """Past, running and period usage (roll-ups + open reservations)."""
        ...

    def history(self, user: str, account: str, partition: str, limit: int) -> list[PastJob]:
        """The user's, the account's and the partition's most recent finished jobs."""
        ...

    def predict(self, request: JobRequest, limit: int) -> Prediction:
        """The request's prediction from the user's, account's and partition's ``limit``
        most recent jobs in the partition (``predict`` over ``history``)."""
        ...

    def uses_account(self, user: str, account: str) -> bool:
        """Whether the user is known to run jobs under the account."""
        ...

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
        """Append a reservation (idempotent per cluster and job id): (entry id, created)."""
        ...

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
        """Append an admin adjustment (either sign); returns its id."""
        ...

    def sweep(self, *, now: datetime, stale_before: datetime, actor: str) -> tuple[int, int]:
        """Settle reservations whose job landed in the warehouse and release stale ones:
        (settled, released)."""
        ...

    def ledger(self, *, account: str | None, user: str | None, limit: int) -> list[LedgerEntry]:
        """Most recent entries first."""
        ...

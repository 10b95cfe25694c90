"""Carbon credit: allocations per account (or user) and period, and an append-only ledger.

The ledger is never updated or deleted (triggers refuse it on both databases); a balance is
the allocation minus the sum of the entries. Entry types: ``reservation`` (held at
submission), ``settlement`` (the job's final charge), ``release`` (a reservation given back),
``adjustment`` (admin correction, either sign). Amounts are grams CO2e; a reservation,
settlement or charge is positive, a release is its negative.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.models.base import Base
from warehouse.types import BigId, UTCDateTime

LEDGER_ENTRY_TYPES = ("reservation", "settlement", "release", "adjustment")


class CreditAllocation(Base):
    """Credit granted to an account (``user_name`` NULL) or one user in it, for a period
    (``cluster`` NULL: all clusters). One allocation per scope and period start."""

    __tablename__ = "credit_allocation"
    __table_args__ = (
        CheckConstraint("period_end > period_start", name="period"),
        CheckConstraint("amount_g >= 0", name="amount"),
        Index(
            "uq_credit_allocation_scope",
            "account",
            text("coalesce(user_name, '')"),
            text("coalesce(cluster, '')"),
            "period_start",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str | None] = mapped_column(Text)
    cluster: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    amount_g: Mapped[float] = mapped_column(Float)
    carry_over_g: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class CreditLedger(Base):
    """One append-only ledger entry."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint(
            "entry_type IN ('reservation', 'settlement', 'release', 'adjustment')",
            name="entry_type",
        ),
        Index("ix_credit_ledger_account_created", "account", "created_at"),
        Index("ix_credit_ledger_job", "cluster", "job_id", "submit_epoch"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_type: Mapped[str] = mapped_column(Text)
    account: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str | None] = mapped_column(Text)
    cluster: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    submit_epoch: Mapped[int | None] = mapped_column(BigInteger)
    #: The reservation a settlement or release closes.
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("credit_ledger.id"))
    amount_g: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    #: Set by callers that may retry (e.g. ``settle:<cluster>:<job>:<epoch>``): a retry
    #: cannot append twice.
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)

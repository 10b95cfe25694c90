"""Indexes the submission-time credit check reads through (migration 0002): a user's,
account's and partition's most recent jobs, open reservations and their closing entries."""

from __future__ import annotations

from sqlalchemy import Index

from warehouse.models.credit import CreditLedger
from warehouse.models.facts import FactJob

CREDIT_CHECK_INDEXES = (
    Index("ix_fact_job_user_partition_end", FactJob.user_id, FactJob.partition_id, FactJob.end_at),
    Index(
        "ix_fact_job_account_partition_end",
        FactJob.account_id,
        FactJob.partition_id,
        FactJob.end_at,
    ),
    Index("ix_fact_job_partition_end", FactJob.partition_id, FactJob.end_at),
    Index("ix_fact_job_user_account_end", FactJob.user_id, FactJob.account_id, FactJob.end_at),
    Index("ix_credit_ledger_user_created", CreditLedger.user_name, CreditLedger.created_at),
    Index("ix_credit_ledger_reservation", CreditLedger.reservation_id),
    Index("ix_credit_ledger_type_created", CreditLedger.entry_type, CreditLedger.created_at),
)

"""credit check indexes: fast per-user history, open reservations and settlement lookups.

The submission-time check reads a user's (account's, partition's) most recent jobs, the
user's and the account's open reservations, and the sweep finds a reservation's closing
entries; these indexes keep each of those an index range scan (docs/credit.md).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_fact_job_user_partition_end", "fact_job", ["user_id", "partition_id", "end_at"]),
    ("ix_fact_job_account_partition_end", "fact_job", ["account_id", "partition_id", "end_at"]),
    ("ix_fact_job_partition_end", "fact_job", ["partition_id", "end_at"]),
    ("ix_fact_job_user_account_end", "fact_job", ["user_id", "account_id", "end_at"]),
    ("ix_credit_ledger_user_created", "credit_ledger", ["user_name", "created_at"]),
    ("ix_credit_ledger_reservation", "credit_ledger", ["reservation_id"]),
    ("ix_credit_ledger_type_created", "credit_ledger", ["entry_type", "created_at"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)

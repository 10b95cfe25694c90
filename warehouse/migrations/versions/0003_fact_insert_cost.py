"""fact insert cost: no per-row foreign-key triggers, no redundant single-column indexes.

On PostgreSQL the five foreign keys of ``fact_job`` (cluster, user, account, partition,
QoS) and the one of ``fact_job_co2e`` (to ``fact_job``) cost a trigger call and an index
probe per inserted row: two thirds of the server's time to land a bulk load. The sink is
the only writer of these tables and resolves (or inserts) every dimension id, and stores
a fact before its CO2e rows, in the same transaction, so the constraints only re-checked
what it had just done. They are dropped here; ``v_orphan_references`` (warehouse.views)
and ``warehouse.integrity.orphans`` report any row whose reference has no target, and the
tests assert there are none after every load. Trade-off: a hand-written INSERT or DELETE
is no longer stopped (and deleting a fact no longer cascades to its CO2e rows); the
integrity view shows the damage instead. SQLite keeps its foreign keys (dropping them
there means rebuilding the tables, and its checks are cheap).

On both backends ``ix_fact_job_user_id`` and ``ix_fact_job_account_id`` are dropped: the
credit-check indexes of 0002 (``ix_fact_job_user_partition_end``,
``ix_fact_job_user_account_end``, ``ix_fact_job_account_partition_end``) lead with the same
columns and serve every lookup they served, and each index costs every inserted fact.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (constraint, table, column, referenced table, ON DELETE) as created by 0001.
_FOREIGN_KEYS = (
    ("fk_fact_job_cluster_id_dim_cluster", "fact_job", "cluster_id", "dim_cluster", None),
    ("fk_fact_job_user_id_dim_user", "fact_job", "user_id", "dim_user", None),
    ("fk_fact_job_account_id_dim_account", "fact_job", "account_id", "dim_account", None),
    ("fk_fact_job_partition_id_dim_partition", "fact_job", "partition_id", "dim_partition", None),
    ("fk_fact_job_qos_id_dim_qos", "fact_job", "qos_id", "dim_qos", None),
    ("fk_fact_job_co2e_fact_id_fact_job", "fact_job_co2e", "fact_id", "fact_job", "CASCADE"),
)


#: (index, column) as created by 0001; redundant with the leading columns of 0002's.
_REDUNDANT_INDEXES = (
    ("ix_fact_job_user_id", "user_id"),
    ("ix_fact_job_account_id", "account_id"),
)


def upgrade() -> None:
    for name, _column in _REDUNDANT_INDEXES:
        op.drop_index(name, table_name="fact_job")
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _column, _target, _ondelete in _FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    for name, column in reversed(_REDUNDANT_INDEXES):
        op.create_index(name, "fact_job", [column], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    # Fails (and rolls the downgrade back) if an orphan was written meanwhile: fix the rows
    # that v_orphan_references lists first.
    for name, table, column, target, ondelete in reversed(_FOREIGN_KEYS):
        op.create_foreign_key(name, table, target, [column], ["id"], ondelete=ondelete)

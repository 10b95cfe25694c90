"""Migrations up and down on both backends; the migrated schema matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.models import PG_UNENFORCED_FOREIGN_KEYS, Base
from warehouse.views import VIEWS


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert migrate.current(engine) is None
        assert migrate.upgrade(engine) == migrate.head()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert set(VIEWS) <= set(inspect(engine).get_view_names())
        assert migrate.downgrade(engine, "base") is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert not set(VIEWS) & set(inspect(engine).get_view_names())
        assert migrate.upgrade(engine) == migrate.head()
        # Upgrading again is a no-op, and views survive it.
        assert migrate.upgrade(engine) == migrate.head()
        assert set(VIEWS) <= set(inspect(engine).get_view_names())
    finally:
        engine.dispose()


@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrated_schema_matches_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [
                d for d in compare_metadata(context, Base.metadata)
                # Expression indexes cannot be reflected on SQLite; checked below instead.
                if "uq_credit_allocation_scope" not in repr(d)
            ]  # fmt: skip
        if engine.dialect.name == "postgresql":
            # Revision 0003 drops these on PostgreSQL only (the sink owns the references).
            dropped = {d[1].name for d in diff if d[0] == "add_fk"}
            assert dropped == PG_UNENFORCED_FOREIGN_KEYS
            diff = [d for d in diff if d[0] != "add_fk"]
        assert diff == []
    finally:
        engine.dispose()


def test_one_allocation_per_scope_and_period(engine: Engine) -> None:
    insert = text(
        "INSERT INTO credit_allocation (account, user_name, cluster, period_start, period_end,"
        " amount_g, carry_over_g, created_at, actor) VALUES (:account, :user_name, NULL,"
        " '2024-01-01 00:00:00', '2024-02-01 00:00:00', 1000, 0, CURRENT_TIMESTAMP, 'admin')"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"account": "phys", "user_name": None})
        conn.execute(insert, {"account": "phys", "user_name": "alice"})
    # NULL user (the whole account) is one scope: a second account-wide row is refused.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"account": "phys", "user_name": None})


def test_ledger_is_append_only(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO credit_ledger (entry_type, account, amount_g, created_at, actor) "
                "VALUES ('adjustment', 'phys', 10.0, CURRENT_TIMESTAMP, 'admin')"
            )
        )
    for statement in ("UPDATE credit_ledger SET amount_g = 0", "DELETE FROM credit_ledger"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT amount_g FROM credit_ledger")).scalar_one() == 10.0

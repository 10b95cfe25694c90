"""The read-only role on a real PostgreSQL: it reads tables and views and cannot write."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from tests.services.postgres import PostgresServer
from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.roles import RoleError, grant_reader
from warehouse.sink import write_facts


@pytest.mark.postgres
def test_reader_reads_and_cannot_write(pg_database: str, postgres_server: PostgresServer) -> None:
    owner = make_engine(pg_database)
    migrate.upgrade(owner)
    write_facts(owner, synthdata.facts(50, seed=1))
    login = f"reader_{uuid.uuid4().hex[:8]}"
    postgres_server.admin_execute(f"CREATE ROLE {login} LOGIN")
    grant_reader(owner, member=login)
    # Views re-created by a later upgrade are granted again.
    migrate.upgrade(owner)
    database = make_url(pg_database).database
    assert database is not None
    reader = make_engine(postgres_server.url(database, user=login))
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM fact_job")).scalar_one() == 50
            assert conn.execute(text("SELECT COUNT(*) FROM v_job_footprint")).scalar_one() == 50
            conn.execute(text("SELECT * FROM v_top_emitters")).all()
        for statement in (
            "INSERT INTO dim_qos (name) VALUES ('x')",
            "UPDATE fact_job SET co2e_g = 0",
            "DELETE FROM rollup_user_day",
            "TRUNCATE credit_ledger",
            "CREATE TABLE sneaky (id int)",
            "DROP VIEW v_job_footprint",
        ):
            with (
                pytest.raises(ProgrammingError, match=r"permission denied|must be owner"),
                reader.begin() as conn,
            ):
                conn.execute(text(statement))
    finally:
        reader.dispose()
        owner.dispose()


@pytest.mark.postgres
def test_grant_reader_refuses_bad_member_names(pg_database: str) -> None:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    try:
        with pytest.raises(RoleError, match="plain role name"):
            grant_reader(engine, member='x"; DROP TABLE fact_job; --')
        with pytest.raises(RoleError, match="does not exist"):
            grant_reader(engine, member="nobody_here_" + uuid.uuid4().hex[:6])
    finally:
        engine.dispose()


def test_grant_reader_is_postgres_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(RoleError, match="PostgreSQL only"):
        grant_reader(engine)

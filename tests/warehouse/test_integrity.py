"""References the sink owns: none is left without a target, and a broken one is reported.

PostgreSQL does not enforce the fact tables' foreign keys since revision 0003 (the sink
resolves every id itself); SQLite still does.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from tests.warehouse import synthdata
from warehouse import migrate
from warehouse.integrity import orphans
from warehouse.sink import copy_facts, write_facts


def _load(engine: Engine) -> None:
    facts = synthdata.facts(300, seed=5)
    assert not write_facts(engine, facts[:200], batch_size=50).rejected
    assert not copy_facts(engine, facts[100:], chunk_size=70).rejected


def test_no_orphans_after_loads(engine: Engine) -> None:
    _load(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM fact_job")).scalar_one() == 300
        assert conn.execute(text("SELECT COUNT(*) FROM fact_job_co2e")).scalar_one() > 0
        assert orphans(conn) == {}


def _break_references(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE fact_job SET user_id = -7 WHERE id = (SELECT MIN(id) FROM fact_job)")
        )
        conn.execute(
            text(
                "UPDATE fact_job_co2e SET fact_id = -9"
                " WHERE fact_id = (SELECT MAX(fact_id) FROM fact_job_co2e)"
            )
        )


@pytest.mark.postgres
@pytest.mark.parametrize("empty_url", ["postgres"], indirect=True)
def test_postgres_reports_what_it_no_longer_refuses(engine: Engine) -> None:
    _load(engine)
    _break_references(engine)
    with engine.connect() as conn:
        broken = orphans(conn)
    assert broken.keys() == {"fact_job.user_id", "fact_job_co2e.fact_id"}
    assert broken["fact_job.user_id"] == 1
    # Going back to enforced keys is refused while orphans exist (nothing is lost).
    with pytest.raises(IntegrityError):
        migrate.downgrade(engine, "0002")
    assert migrate.current(engine) == migrate.head()


@pytest.mark.parametrize("empty_url", ["sqlite"], indirect=True)
def test_sqlite_still_enforces_its_foreign_keys(engine: Engine) -> None:
    _load(engine)
    with pytest.raises(IntegrityError):
        _break_references(engine)
    with engine.connect() as conn:
        assert orphans(conn) == {}


@pytest.mark.postgres
@pytest.mark.parametrize("empty_url", ["postgres"], indirect=True)
def test_downgrade_restores_the_keys(engine: Engine) -> None:
    _load(engine)
    assert migrate.downgrade(engine, "0002") == "0002"
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text("UPDATE fact_job SET user_id = -7 WHERE id = (SELECT MIN(id) FROM fact_job)")
        )
    assert migrate.upgrade(engine) == migrate.head()

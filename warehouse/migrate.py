"""Schema migrations from code: ``upgrade`` / ``downgrade`` / ``current`` on an engine.

Alembic runs from the package's own ``migrations`` directory (no alembic.ini). Views are
*repeatable*: they are dropped before any migration runs and re-created from
``warehouse.views`` once the schema is at head, so a view always matches the code.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from warehouse import views
from warehouse.indexes import ensure_indexes

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and a connection to use)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision shipped with this code."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: no warehouse schema yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate up to ``revision`` in one transaction, then (re)create the views at head."""
    with engine.begin() as conn:
        views.drop_all(conn)
        command.upgrade(alembic_config(conn), revision)
        reached = MigrationContext.configure(conn).get_current_revision()
        if reached == head():
            views.create_all(conn)
            ensure_indexes(conn)  # a deferred-index load that died left them missing
    return reached


def downgrade(engine: Engine, revision: str = "-1") -> str | None:
    """Migrate down to ``revision`` (``-1``: one step; ``base``: drop everything)."""
    with engine.begin() as conn:
        views.drop_all(conn)
        command.downgrade(alembic_config(conn), revision)
        reached = MigrationContext.configure(conn).get_current_revision()
        if reached == head():
            views.create_all(conn)
    return reached

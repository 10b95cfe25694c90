"""The read-only SQL role for admins and reporting tools (PostgreSQL).

``jobcarbon_reader`` (NOLOGIN) gets CONNECT on the database, USAGE on the schema and
SELECT on every table and view, now and (default privileges) on tables the migrating role
creates later; views re-created by ``warehouse.migrate`` are granted again. Login roles
become readers by membership (``grant_reader(engine, member="alice")``). Nothing else:
no INSERT, UPDATE, DELETE, TRUNCATE or CREATE.
"""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import Engine, text

from warehouse.views import READER_ROLE

_ROLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class RoleError(ValueError):
    """A role request that cannot be honoured (names the role and why)."""


def grant_reader(engine: Engine, member: str | None = None) -> None:
    """Create ``jobcarbon_reader`` if missing and grant it read access; optionally make the
    existing login role ``member`` a reader. Needs CREATEROLE (or superuser)."""
    if engine.dialect.name != "postgresql":
        raise RoleError("roles exist on PostgreSQL only (SQLite has no users: use file modes)")
    if member is not None and not _ROLE_NAME.fullmatch(member):
        raise RoleError(f"member {member!r} is not a plain role name ([A-Za-z_][A-Za-z0-9_]*)")
    with engine.begin() as conn:
        preparer = conn.dialect.identifier_preparer
        conn.execute(
            text(
                "DO $$ BEGIN IF NOT EXISTS"
                " (SELECT FROM pg_roles WHERE rolname = 'jobcarbon_reader')"
                " THEN CREATE ROLE jobcarbon_reader NOLOGIN; END IF; END $$"
            )
        )
        conn.execute(
            text(
                "DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO jobcarbon_reader',"
                " current_database()); END $$"
            )
        )
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {READER_ROLE}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE}"))
        conn.execute(
            text(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER_ROLE}"
            )
        )
        if member is not None:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": member}
            ).first()
            if not exists:
                raise RoleError(f"role {member!r} does not exist (create the login role first)")
            # Identifier validated above and quoted by the dialect (DDL takes no parameters).
            conn.execute(text(f"GRANT {READER_ROLE} TO {preparer.quote(member)}"))

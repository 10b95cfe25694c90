"""The SQL warehouse: models and migrations, the sink, roll-ups, admin views and queries.

PostgreSQL in production, SQLite as the embedded default; the same schema on both
(``docs/warehouse.md``).
"""

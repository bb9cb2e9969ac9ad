"""Persistence: SQLAlchemy Core tables (tables.py), repositories returning gateway.core
domain objects (repos/), the Database/Tx unit of work (db.py), Alembic migrations
(migrate.py, migrations/) and listing filters (filters.py)."""

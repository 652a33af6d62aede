"""Alembic migrations of the Sentinel store (run through ``sentinel.store.db.migrate``)."""

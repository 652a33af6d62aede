"""Alembic revision scripts, applied in order by ``sentinel.store.db.migrate``."""

"""Alembic revisions of the audit store's schema; run them with `changegate.store.migrate`."""

"""Alembic environment, run programmatically by ``ensure_schema`` with a live connection."""

from __future__ import annotations

from alembic import context

from shopify_sync.warehouse.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through shopify_sync.warehouse.engine.ensure_schema")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

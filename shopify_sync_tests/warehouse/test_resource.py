"""WarehouseResource hands out a migrated engine."""

from __future__ import annotations

import sqlalchemy as sa

from shopify_sync.warehouse.engine import current_revision, head_revision
from shopify_sync.warehouse.resource import WarehouseResource


def test_resource_engine_is_migrated_on_first_use(sqlite_url: str) -> None:
    resource = WarehouseResource(database_url=sqlite_url, chunk_rows=123)
    engine = resource.get_engine()
    assert resource.get_engine() is engine  # one engine per resource instance
    assert current_revision(engine) == head_revision()
    assert "order_line_item" in sa.inspect(engine).get_table_names()
    assert resource.chunk_rows == 123
    engine.dispose()


def test_resource_repr_hides_the_database_password() -> None:
    resource = WarehouseResource(database_url="mysql+pymysql://app:s3cr3t-pw@db.example:3306/shop")
    assert "s3cr3t-pw" not in repr(resource) and "s3cr3t-pw" not in str(resource)
    assert "db.example" in repr(resource)

"""WarehouseResource: the Dagster resource that hands out the (migrated) engine."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine, make_url

from shopify_sync.config import DEFAULT_CHUNK_ROWS
from shopify_sync.warehouse.engine import make_engine


class WarehouseResource(dg.ConfigurableResource):
    """``database_url`` is a secret (it may carry a password): set it from ``dg.EnvVar``."""

    database_url: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    _engine: Engine | None = PrivateAttr(default=None)

    def __repr__(self) -> str:
        # The URL may carry the database password: never show it.
        try:
            shown = make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a malformed URL is reported when the engine is made
            shown = "<unparsable URL>"
        return f"WarehouseResource(database_url={shown!r}, chunk_rows={self.chunk_rows})"

    __str__ = __repr__

    def get_engine(self) -> Engine:
        """The engine, created and migrated to head on first use."""
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

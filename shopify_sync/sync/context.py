"""The one typed context every sync step takes: the run, and what the step may read and write.

Built by the asset from its Dagster context and resources; the steps never see Dagster.
State between steps goes through the warehouse (``sync_job``) and the object store,
never through this object, so a step can run in another process (or after a crash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine

from shopify_sync.config import Settings
from shopify_sync.shopify.client import LogLike, ShopifyBulkClient
from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.sync.rules import RunInfo
from shopify_sync.telemetry import SyncTelemetry
from shopify_sync.warehouse import jobs


class ShopifyClients(Protocol):
    """Makes one shop's bulk client (``ShopifyBulkResource``); the caller closes it."""

    def client_for(self, shop_code: str, log: LogLike | None = None) -> ShopifyBulkClient: ...


@dataclass(frozen=True)
class StepContext:
    """One step of one run: ``engine`` is the warehouse's SQLAlchemy engine (already migrated)."""

    run: RunInfo
    settings: Settings
    engine: Engine
    store: ObjectStore
    chunk_rows: int
    log: LogLike | None = None
    # Only the fetch step talks to Shopify.
    shopify: ShopifyClients | None = None
    # Whether a run is still live, as the orchestrator knows it (None: a run it does not know);
    # how a run claiming a shop tells a working holder from a dead one (``sync.claim``).
    run_state: Callable[[str], bool | None] | None = None

    def info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)

    def telemetry(self, shop: str) -> SyncTelemetry:
        """A recorder of this run's SYNC_TELEMETRY for ``shop``."""
        return SyncTelemetry(
            self.store,
            run_id=self.run.run_id,
            shop=shop,
            job_type=self.run.mode,
            initiator=self.run.initiator,
            run_created_at=self.run.created_at,
            process_initiated_at=self.run.created_at,
        )

    def current_job(self, shop: str, partition_key: str) -> jobs.SyncJob | None:
        """The unfinished sync_job of this (shop, mode, partition): the hand-off between steps."""
        return jobs.find_resumable_job(self.engine, shop=shop, job_type=self.run.mode, partition_key=partition_key)

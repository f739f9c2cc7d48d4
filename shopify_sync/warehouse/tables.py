"""The warehouse tables of SPEC §4 (SQLAlchemy Core), with the indexes the API and metrics need.

Names of tables and SPEC columns are public. No foreign keys: PlanetScale (MySQL
via Vitess) does not support them, and the ingest keeps parents and children
consistent itself. Extra columns beyond SPEC are documented inline.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from shopify_sync.config import SHOP_CODE_MAX_LENGTH
from shopify_sync.warehouse.types import Money, UtcDateTime

metadata = sa.MetaData()

SHOP = sa.String(SHOP_CODE_MAX_LENGTH)

order_header = sa.Table(
    "order_header",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("order_name", sa.String(64)),
    sa.Column("created_at", UtcDateTime()),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("processed_at", UtcDateTime()),
    sa.Column("cancelled_at", UtcDateTime()),
    sa.Column("test", sa.Boolean, nullable=False, default=False),
    sa.Column("currency_code", sa.String(8)),
    sa.Column("financial_status", sa.String(32)),
    sa.Column("fulfillment_status", sa.String(32)),
    sa.Column("total_price", Money()),
    sa.Column("subtotal_price", Money()),
    sa.Column("total_discounts", Money()),
    sa.Column("total_tax", Money()),
    sa.Column("total_shipping", Money()),
    sa.Column("total_refunded", Money()),
    sa.Column("synced_at", UtcDateTime()),
    # metrics: counted orders of a shop by day; API: orders by date. Each further index
    # slows every upsert, so only indexes a query uses exist (migration 0002).
    sa.Index("ix_order_header_shop_processed_at", "shop", "processed_at"),
)

order_line_item = sa.Table(
    "order_line_item",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("line_item_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.BigInteger, nullable=False),
    sa.Column("product_id", sa.BigInteger),
    sa.Column("variant_id", sa.BigInteger),
    sa.Column("sku", sa.String(255)),
    sa.Column("title", sa.String(1024)),
    sa.Column("quantity", sa.Integer),
    sa.Column("current_quantity", sa.Integer),
    sa.Column("original_unit_price", Money()),
    sa.Column("discounted_unit_price", Money()),
    sa.Column("discounted_total", Money()),
    sa.Column("currency_code", sa.String(8)),
    # Not in SPEC: the parent order's updatedAt this line was read with. It is the
    # "never older" guard for lines and lets the ingest delete exactly the lines a
    # newer version of the order no longer returns.
    sa.Column("order_updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_order_line_item_shop_order", "shop", "order_id"),
)

order_refund = sa.Table(
    "order_refund",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("refund_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime()),
    sa.Column("total_refunded", Money()),
    # Not in SPEC: parent order version, same guard as order_line_item.order_updated_at.
    sa.Column("order_updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_order_refund_shop_order", "shop", "order_id"),
)

product = sa.Table(
    "product",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("product_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("title", sa.String(1024)),
    sa.Column("units_7d", sa.BigInteger, nullable=False, default=0),
    sa.Column("net_sales_7d", Money(), nullable=False, default=0),
    sa.Column("orders_7d", sa.BigInteger, nullable=False, default=0),
    sa.Column("units_30d", sa.BigInteger, nullable=False, default=0),
    sa.Column("net_sales_30d", Money(), nullable=False, default=0),
    sa.Column("orders_30d", sa.BigInteger, nullable=False, default=0),
    sa.Column("metrics_as_of", sa.Date),
    # From the catalog (migration 0008): null until the catalog has seen the product.
    # ``catalog_updated_at`` is the product's Shopify updatedAt; when set, ``title`` is
    # the catalog's and the metrics refresh keeps it. ``inventory_quantity``: the sum over
    # the product's variants that are not deleted.
    sa.Column("vendor", sa.String(255)),
    sa.Column("product_type", sa.String(255)),
    sa.Column("status", sa.String(16)),
    sa.Column("catalog_updated_at", UtcDateTime()),
    sa.Column("inventory_quantity", sa.BigInteger),
)

# The catalog (migration 0008): one row per Shopify product variant, from ``productVariants``.
# A variant Shopify no longer returns in a full refresh gets ``deleted_at`` (never dropped:
# sales history keeps its keys); one that reappears has it cleared.
product_variant = sa.Table(
    "product_variant",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("variant_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("product_id", sa.BigInteger, nullable=False),
    sa.Column("sku", sa.String(255)),
    sa.Column("title", sa.String(1024)),
    sa.Column("price", Money()),
    sa.Column("compare_at_price", Money()),
    sa.Column("inventory_quantity", sa.BigInteger),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("synced_at", UtcDateTime(), nullable=False),
    sa.Column("deleted_at", UtcDateTime()),
    sa.Index("ix_product_variant_shop_product", "shop", "product_id"),
    sa.Index("ix_product_variant_shop_sku", "shop", "sku"),
)

# Not in SPEC: the catalog's own watermark per shop (max variant updatedAt fetched) and
# when its last full refresh completed. Separate from ``sync_watermark`` (the orders').
catalog_state = sa.Table(
    "catalog_state",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("watermark_at", UtcDateTime()),
    sa.Column("full_refresh_at", UtcDateTime()),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

sync_watermark = sa.Table(
    "sync_watermark",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("watermark_at", UtcDateTime(), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

sync_job = sa.Table(
    "sync_job",
    metadata,
    # Not in SPEC: our own key; a Dagster run may retry a job, and a resumed job
    # keeps its job_id while run_id records the latest run that worked on it.
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64)),
    sa.Column("shop", SHOP, nullable=False),
    sa.Column("job_type", sa.String(32), nullable=False),
    # Not in SPEC: `2026-11-22` or `2026-11-01..2026-11-07`; the resume lookup key.
    sa.Column("partition_key", sa.String(64), nullable=False),
    sa.Column("initiator", sa.String(16)),
    sa.Column("window_start", UtcDateTime()),
    sa.Column("window_end", UtcDateTime()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("bulk_operation_id", sa.String(128)),
    sa.Column("object_count", sa.BigInteger),
    sa.Column("file_size", sa.BigInteger),
    sa.Column("archive_key", sa.String(512)),
    sa.Column("lines_committed", sa.BigInteger, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    # Not in SPEC: max order updatedAt ingested (the watermark candidate) and rows per table (JSON text).
    sa.Column("max_updated_at", UtcDateTime()),
    sa.Column("rows_json", sa.Text),
    # Not in SPEC: the commerce events object this job's load writes to, recorded before the
    # write, so a load that dies between the write and deleting sync_job_changes completes
    # the same object on resume instead of writing the events again under another run id.
    sa.Column("events_key", sa.String(512)),
    # Not in SPEC: the one-run-per-shop guard (SPEC §3). ``sync`` while a daily or replay job
    # of the shop is unfinished (set when a run creates or takes it over, cleared when it is
    # completed or closed), else NULL; unique per shop, so two runs cannot both hold the shop
    # whatever the timing: the second INSERT or takeover fails in the database.
    sa.Column("open_lane", sa.String(16)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_sync_job_resume", "shop", "job_type", "partition_key", "created_at"),
    sa.Index("ix_sync_job_run_id", "run_id"),
    sa.Index("ix_sync_job_shop_created_at", "shop", "created_at"),
    sa.Index("uq_sync_job_open_lane", "shop", "open_lane", unique=True),
)

# Not in SPEC: the change records (COMMERCE_TELEMETRY's source) of each committed chunk,
# written in the chunk's own transaction, so a crash loses none: the load step writes the
# run's events from here once the whole file is in, then deletes the job's rows. One row
# per chunk: an Arrow IPC stream (zstd), a few hundred KB for a 20k-line chunk.
sync_job_changes = sa.Table(
    "sync_job_changes",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("start_line", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("end_line", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
)

ORDER_TABLES = ("order_header", "order_line_item", "order_refund")

# Not in SPEC: the (shop, day) whose counted lines an ingest changed and whose stored
# measurements are not yet restated (SPEC §5 "Restatement"). Written in the chunk's own
# transaction, so a crash between the ingest and the transform loses none; the next run
# of the shop restates them. ``token`` changes with every marking, so a run clears only
# the markings it has restated (a concurrent ingest re-marking a day keeps it pending);
# ``sales_token`` is the token whose day measurement_sales has already restated.
measurement_dirty = sa.Table(
    "measurement_dirty",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("token", sa.String(40), nullable=False),
    sa.Column("sales_token", sa.String(40)),
)

# Not in SPEC: the counted lines' sums per (shop, day, product, variant, currency), kept
# by the ingest in each chunk's own transaction (``warehouse.rollup``). Restating a day's
# measurements then reads a few hundred of these rows instead of re-aggregating every
# line of the day: a daily run that changes orders on all 30 stored days restates them
# without reading 30 days of lines (docs/benchmarks.md). ``variant_key`` is the line's
# ``variant_id`` (0: no variant); the product's own row, whose ``orders`` counts an order
# once across its variants, has ``variant_key = -1``. ``currency_code`` is '' when neither
# the line nor the order has one. Money sums are exact (Money); ``latest_*`` is the most
# recent counted line of the row (by processed_at, then line id) and its SKU (variant
# rows) or title (the product's row), as measurement_sales / measurement_performance name
# them. A row exists only while ``line_count`` > 0.
measurement_day_sum = sa.Table(
    "measurement_day_sum",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("product_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("variant_key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("currency_code", sa.String(8), primary_key=True),
    sa.Column("line_count", sa.BigInteger, nullable=False),
    sa.Column("orders", sa.BigInteger, nullable=False),
    sa.Column("units_ordered", sa.BigInteger, nullable=False),
    sa.Column("units_net", sa.BigInteger, nullable=False),
    sa.Column("gross_sales", Money(), nullable=False),
    sa.Column("net_sales", Money(), nullable=False),
    sa.Column("latest_at", UtcDateTime(), nullable=False),
    sa.Column("latest_line_id", sa.BigInteger, nullable=False),
    sa.Column("latest_text", sa.String(1024)),
)

# Not in SPEC: one row per shop, written first by every order-ingest chunk's transaction, so
# chunks of one shop commit one after another even when two ingests of it run at once (a
# daily sync beside a backfill). measurement_day_sum adds each chunk's ``after - before``,
# which is only right when no other chunk of the shop changes the same orders in between.
shop_ingest_lock = sa.Table(
    "shop_ingest_lock",
    metadata,
    sa.Column("shop", SHOP, primary_key=True),
)

"""Response models of the staff API (they generate the OpenAPI document).

Money is a decimal *string* in shop currency: JSON numbers are floats in most
clients, and SPEC §4 says money is exact end to end.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

MoneyStr = Annotated[
    str,
    Field(pattern=r"^-?\d+\.\d{2,}$", examples=["129.90"],
          description="exact decimal amount in shop currency, at least two decimals"),
]


def money_str(value: Decimal | int | str | None) -> str | None:
    """Canonical text of an amount: at least two decimals, never rounded, no exponent.

    Backends return different scales (NUMERIC(18,4) vs scaled integers), so the same
    figure is normalised to one spelling; digits beyond the second decimal are kept
    only when they are not zero, so nothing is ever lost.
    """
    if value is None:
        return None
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if not d.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    if d == 0:
        return "0.00"
    d = d.normalize()
    if int(d.as_tuple().exponent) > -2:
        d = d.quantize(Decimal("0.01"))
    return format(d, "f")


class LineItem(BaseModel):
    line_item_id: int
    product_id: int | None
    variant_id: int | None
    sku: str | None
    title: str | None
    quantity: int
    current_quantity: int
    original_unit_price: MoneyStr | None
    discounted_unit_price: MoneyStr | None
    discounted_total: MoneyStr | None
    currency_code: str | None
    catalog_sku: str | None = Field(default=None, description="the variant's current SKU in the product catalog "
                                    "(null when the catalog does not know the variant or it has no SKU)")
    inventory_quantity: int | None = Field(default=None, description="the variant's current stock in the catalog")
    variant_deleted: bool | None = Field(default=None, description="true when the variant was deleted in Shopify "
                                         "(seen by a full catalog refresh); null when the catalog does not know it")


class ErrorInfo(BaseModel):
    type: str | None = None
    message: str | None = None


class CatalogJob(BaseModel):
    """The shop's newest CATALOG sync_job (the catalog's own bulk job in a daily run, or a replay's)."""

    run_id: str | None
    partition_key: str
    status: str = Field(description="sync_job status: created … loaded, completed or failed")
    full_refresh: bool = Field(description="fetched every variant (no updated_at window)")
    updated_at: datetime | None
    error: ErrorInfo | None = Field(default=None, description="its last error (a failed or closed job)")


class CatalogFreshness(BaseModel):
    """How current a shop's product catalog (``product_variant``) is."""

    shop: str
    watermark_at: datetime | None = Field(description="newest variant updatedAt fetched (the catalog watermark)")
    full_refresh_at: datetime | None = Field(description="start of the last completed full catalog refresh")
    synced_at: datetime | None = Field(description="when the last catalog sync completed")
    lag_seconds: float | None = Field(description="now minus synced_at (>= 0); null before the first catalog sync")
    variants: int = Field(description="product_variant rows of the shop, deleted ones included")
    deleted_variants: int
    last_job: CatalogJob | None = Field(default=None, description="the newest CATALOG sync_job; never the orders' "
                                        "(those are the shop's watermark, last success and open jobs)")
    open_jobs: int = Field(default=0, description="CATALOG sync_job rows not yet completed or failed")


class Refund(BaseModel):
    refund_id: int
    created_at: datetime | None
    total_refunded: MoneyStr | None


class Order(BaseModel):
    shop: str
    order_id: int
    order_name: str | None
    created_at: datetime | None
    updated_at: datetime | None
    processed_at: datetime | None
    cancelled_at: datetime | None
    test: bool
    currency_code: str | None
    financial_status: str | None
    fulfillment_status: str | None
    total_price: MoneyStr | None
    subtotal_price: MoneyStr | None
    total_discounts: MoneyStr | None
    total_tax: MoneyStr | None
    total_shipping: MoneyStr | None
    total_refunded: MoneyStr | None
    synced_at: datetime | None


class OrderDetail(Order):
    line_items: list[LineItem]
    refunds: list[Refund]


class OrderPage(BaseModel):
    orders: list[Order]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page")


class OverviewRow(BaseModel):
    shop: str
    currency_code: str
    orders: int = Field(description="counted orders (test = false, not cancelled) processed in the range")
    units: int = Field(description="net units: sum of current_quantity over product lines")
    units_ordered: int = Field(description="sum of quantity over product lines")
    gross_sales: MoneyStr = Field(description="sum of quantity x original_unit_price over product lines")
    net_sales: MoneyStr = Field(description="sum of current_quantity x discounted_unit_price over product lines")
    average_order_value: MoneyStr = Field(description="net_sales / orders, rounded half-even to cents")
    refunds: MoneyStr = Field(description="sum of total_refunded of the counted orders")
    refunded_orders: int = Field(description="counted orders with total_refunded > 0")


class Overview(BaseModel):
    start: date
    end: date
    shops: list[OverviewRow]
    catalog: list[CatalogFreshness] = Field(default_factory=list,
                                            description="product catalog freshness of the shops in scope")


class PipelineFailure(BaseModel):
    run_id: str
    job_type: str | None
    at: datetime | None
    step: str | None
    error: ErrorInfo | None


class AbandonedJob(BaseModel):
    """An unfinished sync_job whose run can no longer be working on it; the shop's next run resumes it."""

    run_id: str | None
    job_type: str
    partition_key: str
    status: str = Field(description="the sync_job status it was left in")
    updated_at: datetime | None
    age_seconds: float = Field(description="now minus the job's last update (>= 0)")
    reason: str = Field(description="'run_failed': its run ended without finishing it; "
                                    "'stale': not updated for longer than the runs' max runtime")


class PipelineHealth(BaseModel):
    shop: str
    watermark_at: datetime | None
    last_success_at: datetime | None
    last_success_run_id: str | None
    lag_seconds: float | None = Field(description="now minus the watermark (>= 0); null before the first sync")
    open_jobs: int = Field(description="sync_job rows not yet completed or failed")
    recent_failures: list[PipelineFailure]
    abandoned_jobs: list[AbandonedJob] = Field(
        description="open jobs no live run is working on (killed or crashed runs), oldest first")
    catalog: CatalogFreshness | None = Field(default=None, description="the shop's product catalog freshness")


class Pipelines(BaseModel):
    generated_at: datetime
    shops: list[PipelineHealth]


class IngestRun(BaseModel):
    run_id: str
    shop: str | None
    job_type: str | None
    initiator: str | None
    status: str
    last_step: str | None
    started_at: datetime | None
    updated_at: datetime | None
    object_count: int | None
    error: ErrorInfo | None


class IngestRuns(BaseModel):
    runs: list[IngestRun]


class LaunchedRun(BaseModel):
    shop: str
    partition: str
    run_id: str
    already_running: bool = Field(
        description="true when this shop's run for the day was already queued or running (no duplicate launched)")
    full_catalog: bool = Field(default=False, description="whether this run refetches the whole product catalog "
                               "(for an already running run: whether it was launched so)")


class SyncLaunch(BaseModel):
    date: date
    full_catalog: bool = Field(default=False, description="a full catalog refresh was requested")
    runs: list[LaunchedRun]

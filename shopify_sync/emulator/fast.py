"""Fast JSONL writer for the full orders query, without HTTP.

``write_jsonl`` produces byte for byte what the emulator serves for
``queries.orders_query`` over the whole dataset sorted by ``CREATED_AT`` (orders are
generated in creation order), but with string templates instead of the generic
projector, so the warehouse benchmark can make files with millions of lines quickly.
Generation is lazy: order ``i`` comes from ``(seed, shop, i)``, memory stays constant.
A test checks that both paths agree.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from shopify_sync.emulator.dataset import (
    ZERO,
    DatasetParams,
    LineItem,
    Order,
    default_anchor,
    fmt_ts,
    generate_order,
    q2,
)
from shopify_sync.emulator.jsonl import UNGROUPED_PAGE, amount


def _money(value: Decimal, currency: str) -> str:
    text = str(value)  # money is always 2 dp here: "25.00" -> "25.0", "19.90" -> "19.9"
    if len(text) - text.find(".") != 3 or "E" in text:
        text = amount(value)
    elif text[-1] == "0":
        text = text[:-1]
    return '{"shopMoney":{"amount":"' + text + '","currencyCode":"' + currency + '"}}'


@lru_cache(maxsize=65536)
def _s(value: str | None) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")


def _ts(value: datetime | None) -> str:
    return "null" if value is None else '"' + fmt_ts(value) + '"'


def order_line(o: Order) -> str:
    c = o.currency_code
    # totals computed once here (the Order properties recompute on each access)
    orig_sub = cur_sub = cur_disc = ZERO
    for li in o.line_items:
        orig_sub += li.discounted_unit_price * li.quantity
        cur_sub += li.discounted_unit_price * li.current_quantity
        cur_disc += (li.original_unit_price - li.discounted_unit_price) * li.current_quantity
    refunded = refunded_tax = ZERO
    parts = []
    for r in o.refunds:
        total = r.subtotal + r.tax
        refunded += total
        refunded_tax += r.tax
        parts.append('{"id":"gid:\\/\\/shopify\\/Refund\\/' + str(r.id) + '","createdAt":' + _ts(r.created_at)
                     + ',"totalRefundedSet":' + _money(total, c) + "}")
    if o.cancelled_at is None:
        cur_tax = q2(orig_sub * o.tax_rate) - refunded_tax
        cur_ship = o.shipping
    else:
        cur_tax = cur_ship = ZERO
    return (
        '{"id":"gid:\\/\\/shopify\\/Order\\/' + str(o.id) + '","name":"' + o.name
        + '","createdAt":' + _ts(o.created_at) + ',"updatedAt":' + _ts(o.updated_at)
        + ',"processedAt":' + _ts(o.processed_at) + ',"cancelledAt":' + _ts(o.cancelled_at)
        + ',"test":' + ("true" if o.test else "false") + ',"currencyCode":"' + c + '"'
        + ',"displayFinancialStatus":"' + o.display_financial_status + '"'
        + ',"displayFulfillmentStatus":"' + o.display_fulfillment_status + '"'
        + ',"currentTotalPriceSet":' + _money(cur_sub + cur_tax + cur_ship, c)
        + ',"currentSubtotalPriceSet":' + _money(cur_sub, c)
        + ',"currentTotalDiscountsSet":' + _money(cur_disc, c)
        + ',"currentTotalTaxSet":' + _money(cur_tax, c)
        + ',"currentShippingPriceSet":' + _money(cur_ship, c)
        + ',"totalRefundedSet":' + _money(refunded, c)
        + ',"refunds":[' + ",".join(parts) + "]}\n"
    )


_LINE_BODY: dict[tuple, str] = {}


def _line_body(li: LineItem, c: str) -> str:
    """Everything of a line item's JSON between its id and __parentId (highly repetitive: cached)."""
    key = (li.title, li.sku, li.quantity, li.current_quantity, li.original_unit_price, li.discounted_unit_price,
           li.variant_id, li.product_id, c)
    body = _LINE_BODY.get(key)
    if body is None:
        body = (
            '","sku":' + _s(li.sku) + ',"title":' + _s(li.title) + ',"quantity":' + str(li.quantity)
            + ',"currentQuantity":' + str(li.current_quantity)
            + ',"originalUnitPriceSet":' + _money(li.original_unit_price, c)
            + ',"discountedUnitPriceAfterAllDiscountsSet":' + _money(li.discounted_unit_price, c)
            + ',"discountedTotalSet":' + _money(li.discounted_unit_price * li.quantity, c)
            + ',"variant":' + ("null" if li.variant_id is None
                               else '{"id":"gid:\\/\\/shopify\\/ProductVariant\\/' + str(li.variant_id) + '"}')
            + ',"product":' + ("null" if li.product_id is None
                               else '{"id":"gid:\\/\\/shopify\\/Product\\/' + str(li.product_id) + '"}')
            + ',"__parentId":"gid:\\/\\/shopify\\/Order\\/'
        )
        if len(_LINE_BODY) > 200_000:  # bounded memory for any dataset size
            _LINE_BODY.clear()
        _LINE_BODY[key] = body
    return body


def line_item_lines(o: Order) -> list[str]:
    c = o.currency_code
    tail = str(o.id) + '"}\n'
    return ['{"id":"gid:\\/\\/shopify\\/LineItem\\/' + str(li.id) + _line_body(li, c) + tail
            for li in o.line_items]


def iter_lines(p: DatasetParams, grouped: bool = False, page: int = UNGROUPED_PAGE,
               orders: Iterator[Order] | None = None) -> Iterator[bytes]:
    """Lines (bytes, newline-terminated) of the full orders query, in Shopify's order."""
    source = orders if orders is not None else (generate_order(p, i) for i in range(p.orders))
    if grouped:
        for o in source:
            yield order_line(o).encode()
            for line in line_item_lines(o):
                yield line.encode()
        return
    batch: list[Order] = []

    def emit(batch: list[Order]) -> Iterator[bytes]:
        children = []
        for o in batch:
            yield order_line(o).encode()
            children.append(line_item_lines(o))
        longest = max((len(c) for c in children), default=0)
        for k in range(longest):
            for c in children:
                if k < len(c):
                    yield c[k].encode()

    for o in source:
        batch.append(o)
        if len(batch) >= page:
            yield from emit(batch)
            batch = []
    yield from emit(batch)


@dataclass(frozen=True)
class JsonlStats:
    path: Path
    objects: int
    roots: int
    size: int


def render_range(p: DatasetParams, start: int, stop: int, grouped: bool = False,
                 page: int = UNGROUPED_PAGE) -> tuple[bytes, int]:
    """JSONL bytes and line count of orders ``[start, stop)``; ``start`` must be a multiple of
    ``page`` so that concatenated ranges equal one sequential rendering."""
    if start % page:
        raise ValueError(f"render_range: start {start} is not a multiple of the page size {page}")
    out: list[str] = []
    batch: list[Order] = []
    for i in range(start, stop):
        o = generate_order(p, i)
        if grouped:
            out.append(order_line(o))
            out.extend(line_item_lines(o))
            continue
        batch.append(o)
        if len(batch) >= page or i == stop - 1:
            children = []
            for b in batch:
                out.append(order_line(b))
                children.append(line_item_lines(b))
            longest = max((len(c) for c in children), default=0)
            for k in range(longest):
                for c in children:
                    if k < len(c):
                        out.append(c[k])
            batch = []
    return "".join(out).encode(), len(out)


def _render_chunk(args: tuple[DatasetParams, int, int, bool]) -> tuple[bytes, int]:
    p, start, stop, grouped = args
    return render_range(p, start, stop, grouped)


CHUNK_ORDERS = 2000  # a multiple of UNGROUPED_PAGE
PARALLEL_FROM = 50_000  # below this, starting worker processes costs more than it saves


def write_jsonl(path: str | Path, shop: str, orders: int = 200, seed: int = 7, grouped: bool = False,
                days: int = 60, anchor: datetime | None = None, workers: int | None = None) -> JsonlStats:
    """Write the JSONL the emulator would serve for the full orders query (see module doc).

    ``workers``: processes rendering chunks of orders in parallel (default: one per CPU, at
    most 4, for >= 50k orders); the output is identical for any value.
    """
    if orders < 0:
        raise ValueError("write_jsonl: orders must be >= 0")
    p = DatasetParams(seed, shop, orders, days, anchor or default_anchor())
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if orders >= PARALLEL_FROM else 1
    path = Path(path)
    chunks = [(p, start, min(start + CHUNK_ORDERS, orders), grouped) for start in range(0, orders, CHUNK_ORDERS)]
    objects = size = 0
    with open(path, "wb") as fh:
        if workers <= 1:
            results: Iterator[tuple[bytes, int]] = map(_render_chunk, chunks)
            for data, count in results:
                fh.write(data)
                objects += count
                size += len(data)
        else:
            # fork where available: spawn would re-run a caller's unguarded __main__ script in
            # every worker; the workers only compute and never touch locks a thread may hold
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(workers) as pool:
                for data, count in pool.imap(_render_chunk, chunks, chunksize=1):
                    fh.write(data)
                    objects += count
                    size += len(data)
    return JsonlStats(path, objects, orders, size)

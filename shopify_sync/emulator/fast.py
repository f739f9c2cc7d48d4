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
from functools import lru_cache
from pathlib import Path

from shopify_sync.emulator.dataset import (
    DatasetParams,
    Draw,
    DrawLine,
    default_anchor,
    draw_order,
    fmt_epoch,
    round_half_up,
)
from shopify_sync.emulator.jsonl import UNGROUPED_PAGE


@lru_cache(maxsize=1 << 16)
def _amount(cents: int) -> str:
    """Shopify's rendering of a 2-dp amount: 2500 -> "25.0", 1990 -> "19.9", 1234 -> "12.34"."""
    whole, frac = divmod(cents, 100)
    if frac % 10 == 0:
        return f"{whole}.{frac // 10}"
    return f"{whole}.{frac:02d}"


def _money(cents: int, currency: str) -> str:
    return '{"shopMoney":{"amount":"' + _amount(cents) + '","currencyCode":"' + currency + '"}}'


@lru_cache(maxsize=65536)
def _s(value: str | None) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")


_ORDER = (
    '{"id":"gid:\\/\\/shopify\\/Order\\/%d","name":"%s","createdAt":"%s","updatedAt":"%s","processedAt":"%s",'
    '"cancelledAt":%s,"test":%s,"currencyCode":"%s","displayFinancialStatus":"%s","displayFulfillmentStatus":"%s",'
    '"currentTotalPriceSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},'
    '"currentSubtotalPriceSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},'
    '"currentTotalDiscountsSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},'
    '"currentTotalTaxSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},'
    '"currentShippingPriceSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},'
    '"totalRefundedSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}},"refunds":[%s]}\n'
)
_REFUND = ('{"id":"gid:\\/\\/shopify\\/Refund\\/%d","createdAt":"%s",'
           '"totalRefundedSet":{"shopMoney":{"amount":"%s","currencyCode":"%s"}}}')


def order_line(d: Draw) -> str:
    # one %-template: formatting happens in C, faster than concatenating pieces
    # (docs/benchmarks.md, "Emulator and client")
    c = d.currency
    orig_sub = cur_sub = cur_disc = 0
    for li in d.lines:
        orig_sub += li[8] * li[5]
        cur_sub += li[8] * li[6]
        cur_disc += (li[7] - li[8]) * li[6]
    refunded = refunded_tax = 0
    parts = []
    for r in d.refunds:
        total = r[2] + r[3]
        refunded += total
        refunded_tax += r[3]
        parts.append(_REFUND % (r[0], fmt_epoch(r[1]), _amount(total), c))
    if d.cancelled is None:
        cur_tax = round_half_up(orig_sub * d.rate_num, d.rate_den) - refunded_tax
        cur_ship = d.shipping
        cancelled = "null"
    else:
        cur_tax = cur_ship = 0
        cancelled = '"' + fmt_epoch(d.cancelled) + '"'
    return _ORDER % (
        d.id, d.name, fmt_epoch(d.created), fmt_epoch(d.updated), fmt_epoch(d.processed), cancelled,
        "true" if d.test else "false", c, d.financial, d.fulfilment,
        _amount(cur_sub + cur_tax + cur_ship), c, _amount(cur_sub), c, _amount(cur_disc), c,
        _amount(cur_tax), c, _amount(cur_ship), c, _amount(refunded), c, ",".join(parts),
    )


_LINE_BODY: dict[tuple, str] = {}


def _line_body(li: DrawLine, c: str) -> str:
    """Everything of a line item's JSON between its id and __parentId (highly repetitive: cached)."""
    key = (*li[1:], c)
    body = _LINE_BODY.get(key)
    if body is None:
        _, title, sku, pid, vid, qty, cur, orig, disc = li
        body = (
            '","sku":' + _s(sku) + ',"title":' + _s(title) + ',"quantity":' + str(qty)
            + ',"currentQuantity":' + str(cur)
            + ',"originalUnitPriceSet":' + _money(orig, c)
            + ',"discountedUnitPriceAfterAllDiscountsSet":' + _money(disc, c)
            + ',"discountedTotalSet":' + _money(disc * qty, c)
            + ',"variant":' + ("null" if vid is None else '{"id":"gid:\\/\\/shopify\\/ProductVariant\\/' + str(vid) + '"}')
            + ',"product":' + ("null" if pid is None else '{"id":"gid:\\/\\/shopify\\/Product\\/' + str(pid) + '"}')
            + ',"__parentId":"gid:\\/\\/shopify\\/Order\\/'
        )
        if len(_LINE_BODY) > 200_000:  # bounded memory for any dataset size
            _LINE_BODY.clear()
        _LINE_BODY[key] = body
    return body


def line_item_lines(d: Draw) -> list[str]:
    c = d.currency
    tail = str(d.id) + '"}\n'
    return ['{"id":"gid:\\/\\/shopify\\/LineItem\\/' + str(li[0]) + _line_body(li, c) + tail for li in d.lines]


def _render(p: DatasetParams, start: int, stop: int, grouped: bool, page: int) -> Iterator[str]:
    batch: list[Draw] = []
    for i in range(start, stop):
        d = draw_order(p, i)
        if grouped:
            yield order_line(d)
            yield from line_item_lines(d)
            continue
        batch.append(d)
        if len(batch) >= page or i == stop - 1:
            # ungrouped: the page's roots, then their children interleaved (jsonl.flatten's order)
            children = []
            for b in batch:
                yield order_line(b)
                children.append(line_item_lines(b))
            longest = max((len(c) for c in children), default=0)
            for k in range(longest):
                for c in children:
                    if k < len(c):
                        yield c[k]
            batch = []


def iter_lines(p: DatasetParams, grouped: bool = False, page: int = UNGROUPED_PAGE) -> Iterator[bytes]:
    """Lines (bytes, newline-terminated) of the full orders query, in Shopify's order."""
    for line in _render(p, 0, p.orders, grouped, page):
        yield line.encode()


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
    out = list(_render(p, start, stop, grouped, page))
    return "".join(out).encode(), len(out)


def _render_chunk(args: tuple[DatasetParams, int, int, bool]) -> tuple[bytes, int]:
    p, start, stop, grouped = args
    return render_range(p, start, stop, grouped)


CHUNK_ORDERS = 2000  # a multiple of UNGROUPED_PAGE
PARALLEL_FROM = 50_000  # below this, starting worker processes costs more than it saves


def _auto_workers() -> int:
    """Idle CPUs, at most 4: on a busy machine extra processes only add overhead."""
    cpus = os.cpu_count() or 1
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:  # not available on this platform
        idle = cpus
    return max(1, min(4, int(idle + 0.5)))


def write_jsonl(path: str | Path, shop: str, orders: int = 200, seed: int = 7, grouped: bool = False,
                days: int = 60, anchor: datetime | None = None, workers: int | None = None) -> JsonlStats:
    """Write the JSONL the emulator would serve for the full orders query (see module doc).

    ``workers``: processes rendering chunks of orders in parallel (default for >= 50k orders:
    one per idle CPU, at most 4); the output is identical for any value.
    """
    if orders < 0:
        raise ValueError("write_jsonl: orders must be >= 0")
    p = DatasetParams(seed, shop, orders, days, anchor or default_anchor())
    if workers is None:
        workers = _auto_workers() if orders >= PARALLEL_FROM else 1
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

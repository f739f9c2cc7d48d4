"""``ingest_catalog``: a catalog JSONL file → ``product_variant`` + ``product``, chunked and resumable.

Each chunk commits in one transaction together with the job's ``lines_committed``,
``max_updated_at`` and row counts (``jobs.record_chunk``), so a crash loses at most the
chunk in flight and a re-run continues after the last committed line. Every line is
one variant (the query has no nested connection), so rows equal objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from shopify_sync.timeutil import as_utc, as_utc_or_none
from shopify_sync.warehouse import jobs
from shopify_sync.warehouse.catalog.mapping import ProductRow, VariantRow, parse_line
from shopify_sync.warehouse.catalog.restate import mark_stale_days
from shopify_sync.warehouse.catalog.store import upsert_products, upsert_variants
from shopify_sync.warehouse.ingest.model import IngestError

TABLE = "product_variant"


@dataclass(frozen=True)
class CatalogIngestResult:
    objects: int  # lines of the file
    rows: dict[str, int]  # for the whole file, a resumed part included
    products: int  # product rows touched by this attempt
    max_updated_at: datetime | None  # aware UTC, over the whole file
    start_line: int
    seconds: float


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-empty lines, numbered from 1 (a file ends with ``\\n``; byte lines, never ``splitlines``)."""
    number = 0
    with open(path, "rb") as fh:
        for raw in fh:
            text = raw.strip()
            if text:
                number += 1
                yield number, text


def _chunks(path: Path, start_line: int, chunk_rows: int) -> Iterator[tuple[int, list[tuple[VariantRow, ProductRow]]]]:
    chunk: list[tuple[VariantRow, ProductRow]] = []
    last = start_line
    for number, text in _lines(path):
        last = number
        if number <= start_line:
            continue
        chunk.append(parse_line(text, number))
        if len(chunk) >= chunk_rows:
            yield number, chunk
            chunk = []
    if chunk:
        yield last, chunk


def ingest_catalog(engine: Engine, path: Path, *, shop: str, job_id: str, chunk_rows: int, synced_at: datetime,
                   start_line: int | None = None, on_chunk: Callable[[int], None] | None = None,
                   seen: bool = True) -> CatalogIngestResult:
    """Load ``path`` from after ``start_line`` (default: the job's ``lines_committed``).

    ``seen=False`` (a replay of an archived file): the file is no news of what Shopify holds
    now, so a known variant keeps its ``synced_at`` and ``deleted_at``.
    """
    job = jobs.get_job(engine, job_id)
    if job is None:
        raise IngestError(f"no sync_job {job_id!r} to ingest for")
    begin = job.lines_committed if start_line is None else start_line
    max_seen = as_utc_or_none(job.max_updated_at) if begin else None
    rows = job.rows.get(TABLE, 0) if begin else 0
    products = 0
    started = time.monotonic()
    total = begin
    for last, chunk in _chunks(path, begin, max(1, chunk_rows)):
        newest = max(as_utc(v.updated_at) for v, _ in chunk)
        max_seen = newest if max_seen is None else max(max_seen, newest)
        with engine.begin() as conn:
            mark_stale_days(conn, shop, [v for v, _ in chunk], [p for _, p in chunk])
            rows += upsert_variants(conn, shop, (v for v, _ in chunk), synced_at, seen=seen)
            products += upsert_products(conn, shop, (p for _, p in chunk))
            jobs.record_chunk(conn, job_id, lines_committed=last, max_updated_at=max_seen, rows={TABLE: rows})
        total = last
        if on_chunk is not None:
            on_chunk(last)
    objects = max(total, sum(1 for _ in _lines(path)))
    return CatalogIngestResult(objects, {TABLE: rows}, products, max_seen, begin, time.monotonic() - started)

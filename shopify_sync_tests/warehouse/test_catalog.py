"""The catalog in the warehouse: parsing, guarded upserts, deletions, resume; on all three backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopify_sync.sync.catalog import full_refresh_due
from shopify_sync.vocab import Mode
from shopify_sync.warehouse import catalog, jobs, make_engine
from shopify_sync.warehouse.catalog import CatalogState, parse_line
from shopify_sync.warehouse.ingest import IngestError
from shopify_sync.warehouse.tables import product, product_variant

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def variant_line(vid: int, pid: int, *, sku: str | None = "SKU", price: str = "19.99", stock: int = 5,
                 at: datetime = T0, title: str = "Tee", **extra: object) -> str:
    obj = {"id": f"gid://shopify/ProductVariant/{vid}", "sku": sku, "title": "M", "price": price,
           "compareAtPrice": None, "inventoryQuantity": stock, "updatedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "product": {"id": f"gid://shopify/Product/{pid}", "title": title, "vendor": "Acme", "productType": "Tee",
                       "status": "ACTIVE", "updatedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, **extra}
    return json.dumps(obj)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def new_job(engine: sa.Engine, full: bool = True) -> jobs.SyncJob:
    return jobs.create_job(engine, shop="DEMO", job_type=Mode.CATALOG, partition_key="2026-11-20",
                           window_start=None if full else T0)


def load(engine: sa.Engine, path: Path, job: jobs.SyncJob, **kw: object) -> catalog.CatalogIngestResult:
    return catalog.ingest_catalog(engine, path, shop="DEMO", job_id=job.job_id, chunk_rows=2,
                                  synced_at=datetime.now(UTC), **kw)  # type: ignore[arg-type]


def variant_rows(engine: sa.Engine) -> dict[int, dict[str, object]]:
    with engine.connect() as conn:
        return {int(r["variant_id"]): dict(r) for r in conn.execute(sa.select(product_variant)).mappings()}


def test_parse_line_reads_exact_money_and_gids() -> None:
    v, p = parse_line(variant_line(11, 7, price="1234567890123.4567"), 3)
    assert (v.variant_id, v.product_id, p.product_id) == (11, 7, 7)
    assert v.price == Decimal("1234567890123.4567")
    assert p.vendor == "Acme" and p.product_type == "Tee"


@pytest.mark.parametrize(("line", "reason"), [
    (variant_line(1, 2, price="1.23456"), "decimal places"),
    (variant_line(1, 2, __parentId="gid://shopify/Product/2"), "__parentId"),
    (json.dumps({"id": "gid://shopify/ProductVariant/1", "updatedAt": "2026-01-01T00:00:00Z"}), "without its product"),
    (variant_line(1, 2).replace("ProductVariant/1", "Order/1"), "ProductVariant GID"),
    ("{not json", "Expecting"),
])
def test_a_bad_line_names_its_number_and_cause(line: str, reason: str) -> None:
    with pytest.raises(IngestError, match=reason) as info:
        parse_line(line, 42)
    assert info.value.line == 42


def test_full_refresh_is_due_without_watermark_on_request_and_when_old() -> None:
    now = T0
    assert full_refresh_due(CatalogState(None, None, None), requested=False, now=now, every_days=7)
    fresh = CatalogState(now, now - timedelta(days=1), now)
    assert not full_refresh_due(fresh, requested=False, now=now, every_days=7)
    assert full_refresh_due(fresh, requested=True, now=now, every_days=7)
    assert full_refresh_due(CatalogState(now, now - timedelta(days=8), now), requested=False, now=now, every_days=7)
    assert not full_refresh_due(CatalogState(now, None, now), requested=False, now=now, every_days=0)


def test_ingest_upserts_marks_deleted_and_never_regresses(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        first = new_job(engine)
        lines = [variant_line(1, 10, sku="A-1", price="10.10"), variant_line(2, 10, sku=None, price="0.00"),
                 variant_line(3, 20, sku="B-1", price="99999999999999.9999", title="Mug")]
        result = load(engine, write(tmp_path / "full.jsonl", lines), first)
        assert result.rows == {"product_variant": 3} and result.objects == 3
        catalog.refresh_product_stock(engine, "DEMO")
        rows = variant_rows(engine)
        assert rows[3]["price"] == Decimal("99999999999999.9999")  # exact at rest, SQLite included
        assert rows[2]["sku"] is None
        # a later full refresh without variant 2: flagged, kept
        second = new_job(engine)
        later = T0 + timedelta(hours=1)
        load(engine, write(tmp_path / "full2.jsonl", [variant_line(1, 10, sku="A-1", stock=1, at=later),
                                                      variant_line(3, 20, sku="B-1", at=later, title="Mug")]), second)
        assert catalog.mark_deleted(engine, "DEMO", not_seen_since=second.created_at or T0) == 1
        # an older version of variant 1 (a replayed file) changes nothing but synced_at
        old = new_job(engine, full=False)
        load(engine, write(tmp_path / "old.jsonl", [variant_line(1, 10, sku="OLD", stock=99, at=T0)]), old)
        catalog.refresh_product_stock(engine, "DEMO")
        rows = variant_rows(engine)
        assert rows[2]["deleted_at"] is not None and rows[1]["deleted_at"] is None
        assert (rows[1]["sku"], rows[1]["inventory_quantity"]) == ("A-1", 1)
        with engine.connect() as conn:
            stock = dict(conn.execute(sa.select(product.c.product_id, product.c.inventory_quantity)).all())
            titles = dict(conn.execute(sa.select(product.c.product_id, product.c.title)).all())
        assert stock == {10: 1, 20: 5}  # the deleted variant's stock no longer counts
        assert titles == {10: "Tee", 20: "Mug"}
        assert catalog.variants_without_product(engine, ["DEMO"]) == []
    finally:
        engine.dispose()


def test_a_crash_mid_ingest_resumes_after_the_last_committed_chunk(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        job = new_job(engine)
        path = write(tmp_path / "c.jsonl", [variant_line(i, 100 + i % 2, sku=f"S-{i}", at=T0 + timedelta(minutes=i))
                                            for i in range(1, 8)])

        def crash(line: int) -> None:
            if line >= 4:
                raise KeyboardInterrupt("killed mid ingest")

        with pytest.raises(KeyboardInterrupt):
            load(engine, path, job, on_chunk=crash)
        stored = jobs.get_job(engine, job.job_id)
        assert stored is not None and stored.lines_committed == 4 and len(variant_rows(engine)) == 4
        result = load(engine, path, job)
        assert result.start_line == 4
        assert result.rows == {"product_variant": 7}
        assert result.max_updated_at == T0 + timedelta(minutes=7)
        assert len(variant_rows(engine)) == 7
    finally:
        engine.dispose()


def test_catalog_watermark_never_moves_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert catalog.get_state(engine, "DEMO").watermark_at is None
        catalog.advance_state(engine, "DEMO", T0, run_id="r1", full_refresh_at=T0)
        state = catalog.advance_state(engine, "DEMO", T0 - timedelta(days=1), run_id="r2")
        assert state.watermark_at == T0 and state.full_refresh_at == T0
        assert catalog.advance_state(engine, "DEMO", T0 + timedelta(hours=1), run_id="r3").watermark_at == \
            T0 + timedelta(hours=1)
    finally:
        engine.dispose()

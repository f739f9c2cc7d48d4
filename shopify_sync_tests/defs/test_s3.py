"""The same daily run with the object store on S3 (moto's standalone server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday
from shopify_sync_tests.storage.s3_server import aws_env, make_bucket, moto_endpoint  # noqa: F401


@pytest.fixture
def s3_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str, moto_endpoint: str,  # noqa: F811
               aws_env: None) -> Iterator[Harness]:  # noqa: F811
    bucket = make_bucket(moto_endpoint)
    yield from make_harness(tmp_path, monkeypatch, sqlite_url, orders_per_shop=40, extra_env={
        "SHOPIFY_SYNC_STORAGE_URL": f"s3://{bucket}/warehouse-objects",
        "SHOPIFY_SYNC_S3_ENDPOINT_URL": moto_endpoint,
    })


def test_daily_run_with_s3_object_store(s3_harness: Harness) -> None:
    import boto3

    h = s3_harness
    day = yesterday()
    result = h.daily("DEMO", day)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())

    # Objects really are in the bucket, under the prefix, at the SPEC keys.
    bucket = h.env["SHOPIFY_SYNC_STORAGE_URL"].removeprefix("s3://").split("/", 1)[0]
    s3 = boto3.client("s3", endpoint_url=h.env["SHOPIFY_SYNC_S3_ENDPOINT_URL"], region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"warehouse-objects/raw/shopify/shop=DEMO/DAILY_INCREMENTAL/date={day}/{result.run_id}.jsonl" in keys
    assert f"warehouse-objects/measurement/sales/shop=DEMO/date={day}/part-0.parquet" in keys
    assert f"warehouse-objects/measurement/performance/shop=DEMO/date={day}/part-0.parquet" in keys
    assert any(k.startswith("warehouse-objects/telemetry/sync/") and k.endswith("-completed.json") for k in keys)

    # The archive is the downloaded bytes, unchanged: same size as the emulator served.
    raw = h.store().get_bytes(f"raw/shopify/shop=DEMO/DAILY_INCREMENTAL/date={day}/{result.run_id}.jsonl")
    md = result.asset_materializations_for_node("shopify_bulk_jsonl")[0].metadata
    assert len(raw) == md["bytes_downloaded"].value > 0

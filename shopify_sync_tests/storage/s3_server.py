"""A real S3-protocol server on loopback (moto's standalone server), for store tests.

Only the HTTP server is moto: requests go through boto3, botocore's signing and the
network stack exactly as against R2 or MinIO. Import the fixtures into a test module
(``from shopify_sync_tests.storage.s3_server import moto_endpoint, s3_store  # noqa: F401``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shopify_sync.storage import S3ObjectStore


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the way production gets them: the standard AWS variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"ss-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(moto_endpoint: str, aws_env: None) -> S3ObjectStore:
    """A store on a fresh bucket, under a prefix (as ``s3://bucket/prefix`` configures it)."""
    return S3ObjectStore(make_bucket(moto_endpoint), "objects", endpoint_url=moto_endpoint)

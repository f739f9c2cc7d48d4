"""Fault suite, issue 14 "Prove it": the object store down in the middle of a running sync.

The store is S3 (moto's standalone server on loopback, as in ``defs/test_s3.py``), stopped
for real at the moment the run writes the raw archive, or its first measurement object,
and started again (same port, same bucket) once the run has ended. Expected: a named clean
failure (one line naming ``SHOPIFY_SYNC_STORAGE_URL``, the run failed and not relaunched, the
watermark untouched), then the same command converges to a clean run, re-polling the stored
bulk operation or reusing the archive rather than paying Shopify again. Then the token scan,
which also reads every object of the bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shopify_sync_tests.defs.conftest import Harness, make_harness
from shopify_sync_tests.faults.clean_run import (
    ANCHOR,
    API_TOKEN,
    D1,
    Outcome,
    assert_like_clean,
    assert_no_secrets,
    clean_outcome,
    order_jobs,
)
from shopify_sync_tests.storage.s3_server import aws_env, make_bucket  # noqa: F401

pytestmark = [pytest.mark.fault, pytest.mark.slow]

AWS_SECRET = "testing-secret"  # aws_env's AWS_SECRET_ACCESS_KEY


class Store:
    """A moto S3 server that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto keeps its buckets in this process, not in the server: they outlive a restart.
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()


@pytest.fixture(scope="module")
def store_server() -> Iterator[Store]:
    store = Store()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_server: Store,
            aws_env: None) -> Iterator[Harness]:  # noqa: F811
    bucket = make_bucket(store_server.endpoint)
    yield from make_harness(tmp_path, monkeypatch, f"sqlite:///{tmp_path}/warehouse.db", anchor=ANCHOR, stock_clock=ANCHOR, extra_env={
        "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
        "SHOPIFY_SYNC_STORAGE_URL": f"s3://{bucket}/objects",
        "SHOPIFY_SYNC_S3_ENDPOINT_URL": store_server.endpoint,
    })


def _stop_before_first_write(monkeypatch: pytest.MonkeyPatch, store: Store, prefix: str) -> list[str]:
    """Stop the server when the run first writes an object under ``prefix`` (before the write)."""
    from shopify_sync.storage.object_store import S3ObjectStore

    stopped: list[str] = []

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(self: S3ObjectStore, key: str, *args: Any, **kwargs: Any) -> Any:
            if key.startswith(prefix) and not stopped:
                stopped.append(key)
                store.stop()
            return real(self, key, *args, **kwargs)
        return write

    monkeypatch.setattr(S3ObjectStore, "put_file", wrap(S3ObjectStore.put_file))
    monkeypatch.setattr(S3ObjectStore, "put_bytes", wrap(S3ObjectStore.put_bytes))
    return stopped


def _copy_bucket(h: Harness, dest: Path) -> Path:
    """Every object of the run's bucket as a file (names included), for the token scan."""
    store = h.store()
    for key in store.list_keys(""):
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get_bytes(key))
    return dest


@pytest.mark.parametrize("moment", ["archive", "measurement"])
def test_the_store_down_mid_run_fails_cleanly_then_the_same_command_converges(
    moment: str, harness: Harness, store_server: Store, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from shopify_sync.defs.retry import is_transient
    from shopify_sync.launch.inprocess import first_failure

    clean: Outcome = clean_outcome(tmp_path_factory, (D1,))
    h = harness
    prefix = {"archive": "raw/shopify/", "measurement": "measurement/"}[moment]
    started = time.monotonic()
    try:
        with monkeypatch.context() as m:
            stopped = _stop_before_first_write(m, store_server, prefix)
            first = h.daily("DEMO", D1)
    finally:
        store_server.start()
    seconds = time.monotonic() - started
    assert stopped, f"the run never wrote under {prefix}"
    assert not first.success
    line = first_failure(first)
    assert "SHOPIFY_SYNC_STORAGE_URL" in line and "\n" not in line, line
    assert not is_transient(h.instance, first.run_id)  # failed at once, and not relaunched
    assert h.watermark("DEMO") is None  # untouched
    [job] = order_jobs(h)
    assert job.status == "failed" and job.open_lane == "sync"  # the next run of the shop takes it over
    second = h.daily("DEMO", D1)
    assert second.success, first_failure(second)
    assert len(h.run_queries("DEMO")) == 1  # the stored operation re-polled, or its archive reused
    assert_like_clean(h, clean)
    bucket_copy = _copy_bucket(h, tmp_path_factory.mktemp("bucket"))
    assert_no_secrets(h, {"AWS secret key": AWS_SECRET}, roots=(bucket_copy,))
    print(f"\n[fault 14 store down at {moment}] first run failed in {seconds:.1f} s: {line}")

"""A multi-hundred-MB result downloads with bounded memory (the emulator streams it too)."""

from __future__ import annotations

import threading

import psutil

from shopify_sync_tests.shopify.conftest import window_query

SIZE = 300 * 1024 * 1024
BOUND = 64 * 1024 * 1024


class PeakRss:
    """Samples this process's RSS every few ms in a thread; ``peak`` is the max seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def test_300_mb_result_downloads_with_bounded_memory(make_client, server, tmp_path) -> None:
    server.emulator.faults.add("large_result", size_bytes=SIZE)
    client = make_client()
    op = client.poll(client.submit(window_query()).id)
    assert op.file_size == SIZE and op.url is not None
    dest = tmp_path / "big.jsonl"
    try:
        with PeakRss() as rss:
            written = client.download(op.url, dest, op.file_size, operation_id=op.id)
        growth = rss.peak - rss.baseline
        assert written == SIZE == dest.stat().st_size
        assert growth < BOUND, f"RSS grew by {growth / 2**20:.1f} MiB while downloading {SIZE / 2**20:.0f} MiB"
        with open(dest, "rb") as fh:
            fh.seek(SIZE - 1)
            assert fh.read() == b"\n"
    finally:
        dest.unlink(missing_ok=True)

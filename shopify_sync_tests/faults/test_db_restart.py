"""Fault suite, issue 14 "Prove it": the MariaDB or PostgreSQL server restarted for real in the
middle of an ingest (a private server per module, ``private_servers``; never the shared ones).

Two moments, with the chunk size at 37 lines (about 8 chunks for this dataset):

- **restart inside a chunk**: chunks 1-2 are committed, chunk 3 has written its rows in an
  open transaction when the server is stopped and started again. The dropped connection
  is transient (``failures.classify``): the chunk writer redoes the chunk on a new
  connection and the run goes on; expected: the run succeeds, exactly as a clean one.
- **down for a while**: the server stops after chunk 2 committed and comes back once the
  ingest step has failed. The next chunk cannot connect; expected: the run fails with one
  line (a transient error: the daily relaunch would run it again), the watermark
  untouched, and the same command resumes after the committed chunks and converges.

Judged against a clean run of the same day (``clean_run``), then the token scan (with the
database password).
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
from shopify_sync_tests.faults.private_servers import PASSWORD, PrivateMariaDB, PrivatePostgres, PrivateServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CHUNK_ROWS = 37  # make_harness's SHOPIFY_SYNC_CHUNK_ROWS
SERVERS: dict[str, type[PrivateServer]] = {"mariadb": PrivateMariaDB, "postgres": PrivatePostgres}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[PrivateServer]:
    cls = SERVERS[request.param]
    missing = cls.missing()  # type: ignore[attr-defined]
    if missing:
        pytest.skip(f"no private {request.param} server can be started here ({missing})")
    srv = cls()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: PrivateServer) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, server.create_database(), anchor=ANCHOR, stock_clock=ANCHOR,
                            extra_env={"SHOPIFY_SYNC_API_TOKEN": API_TOKEN})


def _on_call(real: Callable[..., Any], nth: int, action: Callable[[], None], *, before: bool) -> Callable[..., Any]:
    """``real``, with ``action`` run once, before or after its ``nth`` call."""
    calls: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if before and len(calls) == nth:
            action()
        result = real(*args, **kwargs)
        if not before and len(calls) == nth:
            action()
        return result

    wrapper.calls = calls  # type: ignore[attr-defined]
    return wrapper


def _restart_inside_chunk_3(m: pytest.MonkeyPatch, server: PrivateServer) -> list[int]:
    """The calls of ``record_chunk``, which runs inside each chunk's transaction after its rows."""
    from shopify_sync.warehouse.ingest import write

    wrapper = _on_call(write.record_chunk, 3, server.restart, before=True)
    m.setattr(write, "record_chunk", wrapper)
    return wrapper.calls  # type: ignore[attr-defined, no-any-return]


def _down_after_chunk_2(m: pytest.MonkeyPatch, server: PrivateServer) -> None:
    """Stopped once chunk 2 is committed; started again once the ingest step has given up, so
    the next chunk meets a server that refuses connections, and every later step one that
    is back (deterministic: the outage spans exactly the rest of the ingest)."""
    from shopify_sync.defs.assets import ingest
    from shopify_sync.warehouse.ingest.write import ChunkWriter

    m.setattr(ChunkWriter, "commit", _on_call(ChunkWriter.commit, 2, server.stop, before=False))
    real_load = ingest.load_orders

    def load_orders(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_load(*args, **kwargs)
        finally:
            if not server.running:
                server.start()

    m.setattr(ingest, "load_orders", load_orders)


def test_a_restart_inside_a_chunk_is_ridden_out_by_the_run(
    server: PrivateServer, harness: Harness, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from shopify_sync.launch.inprocess import first_failure

    clean: Outcome = clean_outcome(tmp_path_factory, (D1,))
    h, restarts = harness, server.restarts
    started = time.monotonic()
    with monkeypatch.context() as m:
        calls = _restart_inside_chunk_3(m, server)
        run = h.daily("DEMO", D1)
    seconds = time.monotonic() - started
    assert server.restarts == restarts + 1  # it really happened, during this run
    assert run.success, first_failure(run)
    [job] = order_jobs(h)
    assert job.status == "completed" and job.open_lane is None
    chunks = -(-job.lines_committed // CHUNK_ROWS)
    assert len(calls) == chunks + 1  # chunk 3 was written twice: its first transaction died with the server
    assert_like_clean(h, clean)
    assert_no_secrets(h, {"database password": PASSWORD})
    print(f"\n[fault 14 {server.name} restarted inside chunk 3] run ok in {seconds:.1f} s "
          f"({chunks} chunks, chunk 3 redone on a new connection)")


def test_a_server_down_for_a_while_fails_the_run_then_the_same_command_resumes(
    server: PrivateServer, harness: Harness, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from shopify_sync.defs.retry import is_transient
    from shopify_sync.launch.inprocess import first_failure

    clean: Outcome = clean_outcome(tmp_path_factory, (D1,))
    h = harness
    started = time.monotonic()
    with monkeypatch.context() as m:
        _down_after_chunk_2(m, server)
        first = h.daily("DEMO", D1)
    seconds = time.monotonic() - started
    assert not first.success and server.running
    line = first_failure(first)
    assert "\n" not in line and PASSWORD not in line, line
    assert is_transient(h.instance, first.run_id)  # a lost warehouse: the daily relaunch runs it again
    assert h.watermark("DEMO") is None  # untouched
    [job] = order_jobs(h)
    committed = job.lines_committed
    assert committed > 0 and job.status != "completed"
    second = h.daily("DEMO", D1)
    assert second.success, first_failure(second)
    resumed = second.asset_materializations_for_node("order_tables")[0].metadata["resumed_from_line"]
    assert str(committed) in str(resumed.value)  # after the committed chunks, not from line 0
    assert len(h.run_queries("DEMO")) == 1  # the archived file reused: Shopify not asked again
    assert_like_clean(h, clean)
    assert_no_secrets(h, {"database password": PASSWORD})
    print(f"\n[fault 14 {server.name} down from chunk 2 to the end of the ingest step] first run failed in {seconds:.1f} s: {line}; "
          f"the re-run resumed after line {committed}")


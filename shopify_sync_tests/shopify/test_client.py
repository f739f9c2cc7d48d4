"""ShopifyBulkClient against the bundled emulator over real HTTP (no mocked transport)."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.shopify.client import BulkOperation, ClientOptions, ShopifyBulkClient
from shopify_sync.shopify.errors import (
    AccessDenied,
    BulkOperationCanceled,
    BulkOperationExpired,
    BulkOperationFailed,
    BulkOperationNotFound,
    BulkQueryInvalid,
    InvalidToken,
    OperationInProgressTimeout,
    PollBudgetExhausted,
    ResultUrlExpired,
    ShopifyGraphQLError,
    ShopifyRequestError,
)
from shopify_sync.shopify.schema import validate_document
from shopify_sync_tests.shopify.conftest import TOKEN, Sleeper, empty_window_query, window_query


def kinds(server: EmulatorServer, kind: str) -> list:
    return server.emulator.log_of(kind)


def lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line for line in fh if line.strip()]


# --- happy path, versions, schema ------------------------------------------------------

@pytest.mark.parametrize("version", ["2025-01", "2025-10", "2026-01", "2026-10"])
def test_run_end_to_end_and_every_sent_document_is_schema_valid(make_client, server, sent, tmp_path,
                                                                 version) -> None:
    client = make_client(version)
    submitted: list[BulkOperation] = []
    statuses: list[str] = []
    result = client.run(window_query(), tmp_path / "out.jsonl", on_submitted=submitted.append,
                        on_status=lambda op: statuses.append(op.status))

    assert result.operation.status == "COMPLETED"
    assert result.bytes == result.operation.file_size == (tmp_path / "out.jsonl").stat().st_size > 0
    assert result.object_count == len(lines(result.path)) == result.operation.object_count
    assert [op.id for op in submitted] == [result.operation.id]
    assert statuses[-1] == "COMPLETED"
    assert len(kinds(server, "run_query")) == 1
    assert client.served_version == version
    assert sent.documents, "the hook saw no request"
    for doc in sent.documents:
        assert validate_document(doc, "2026-10") == []
        assert "groupObjects" not in doc


@pytest.mark.parametrize(("version", "field"), [("2025-10", "node(id:"), ("2026-01", "bulkOperation(id:"),
                                                ("2026-10", "bulkOperation(id:")])
def test_status_query_uses_node_before_2026_01(make_client, server, sent, version, field) -> None:
    client = make_client(version)
    op = client.submit(window_query())
    got = client.get(op.id)
    assert got is not None and got.id == op.id
    poll_docs = [d for d in sent.documents if "ShopifySyncBulkOperation" in d]
    assert poll_docs and all(field in d for d in poll_docs)
    assert [e.version for e in kinds(server, "poll")] == [version]


def test_get_unknown_operation_is_none_and_poll_raises(make_client) -> None:
    client = make_client()
    assert client.get("gid://shopify/BulkOperation/1") is None
    with pytest.raises(BulkOperationNotFound, match="BulkOperation/1"):
        client.poll("gid://shopify/BulkOperation/1")


def test_submit_returns_before_any_poll(make_client, server) -> None:
    server.emulator.config.completion_seconds = 120
    client = make_client()
    op = client.submit(window_query())
    assert op.status == "CREATED" and op.id.startswith("gid://shopify/BulkOperation/")
    assert kinds(server, "poll") == []


def test_empty_result_is_not_an_error(make_client, server, tmp_path) -> None:
    client = make_client()
    result = client.run(empty_window_query(), tmp_path / "empty.jsonl")
    assert result.operation.status == "COMPLETED" and result.operation.url is None
    assert (result.bytes, result.object_count) == (0, 0)
    assert result.path.read_bytes() == b""
    assert kinds(server, "download") == []


# --- request-level retries ---------------------------------------------------------------

def test_429_honours_retry_after(make_client, server, sleeper) -> None:
    server.emulator.faults.add("http_429", times=2, retry_after=7)
    op = make_client().submit(window_query())
    assert op.status == "CREATED"
    assert sleeper.waits == [7.0, 7.0]
    assert [e.status_code for e in kinds(server, "run_query")] == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_with_backoff(make_client, server, sleeper, status) -> None:
    server.emulator.faults.add("http_5xx", times=2, status=status, on=["run_query"])
    make_client().submit(window_query())
    assert [e.status_code for e in kinds(server, "run_query")] == [status, status, 200]
    assert len(sleeper.waits) == 2 and sleeper.waits[1] > sleeper.waits[0] > 0


@pytest.mark.parametrize("version", ["2025-10", "2026-10"])
def test_submit_with_lost_response_adopts_the_created_operation(make_client, server, sleeper, caplog,
                                                                 version) -> None:
    # The first attempt's response is lost (here: the operation exists, the client saw a 502),
    # so the retry must not start a duplicate job (or, before 2026-01, wait for its own job).
    caplog.set_level(logging.WARNING, logger="shopify_sync")
    server.emulator.config.completion_seconds = 600
    created = make_client(version).submit(window_query())
    server.emulator.faults.add("http_5xx", times=1, status=502, on=["run_query"])
    adopted = make_client(version).submit(window_query())
    assert adopted.id == created.id
    assert [e.status_code for e in kinds(server, "run_query")] == [200, 502]
    assert len(server.emulator.operations("DEMO")) == 1
    assert "adopting" in caplog.text and sleeper.waits == [1.0]


def test_in_progress_blocker_running_the_same_query_is_adopted(make_client, server, sleeper) -> None:
    # Before 2026-01: a crashed run's job (id never stored) blocks the shop; it is this job.
    server.emulator.config.completion_seconds = 600
    orphan = make_client("2025-10").submit(window_query())
    again = make_client("2025-10").submit(window_query())
    assert again.id == orphan.id
    assert sleeper.waits == []
    assert [e.status_code for e in kinds(server, "run_query")] == [200, 200]  # the 2nd got in-progress


def test_submit_after_5xx_does_not_adopt_a_different_query(make_client, server) -> None:
    server.emulator.config.completion_seconds = 600
    other = make_client().submit(empty_window_query())
    server.emulator.faults.add("http_5xx", times=1, status=502, on=["run_query"])
    mine = make_client().submit(window_query())
    assert mine.id != other.id
    assert [e.status_code for e in kinds(server, "run_query")] == [200, 502, 200]


def test_persistent_5xx_gives_up_within_bounds(make_client, server, sleeper) -> None:
    server.emulator.faults.add("http_5xx", times=None, status=503)
    client = make_client(max_request_retries=3)
    with pytest.raises(ShopifyRequestError, match="HTTP 503") as exc:
        client.submit(window_query())
    assert exc.value.status_code == 503
    assert len(kinds(server, "run_query")) == 4
    assert len(sleeper.waits) == 3


def test_total_request_wait_is_bounded(make_client, server, sleeper) -> None:
    server.emulator.faults.add("http_429", times=None, retry_after=100)
    client = make_client(max_request_retries=50, max_request_wait_seconds=250)
    with pytest.raises(ShopifyRequestError, match="429"):
        client.submit(window_query())
    assert sum(sleeper.waits) <= 250
    assert sleeper.waits == [100.0, 100.0]


def test_throttled_waits_for_bucket_refill(server, make_client) -> None:
    # A real leaky bucket: 14 points, 3/s. The mutation costs 10, so a second one right
    # after the first finds ~4 points and must wait ceil((10 - 4) / 3) = 2 s.
    server.emulator.config.bucket_size = 14
    server.emulator.config.restore_rate = 3
    real = Sleeper()

    def sleep(seconds: float) -> None:
        real(seconds)
        time.sleep(seconds)

    client = make_client(sleep=sleep)
    first = client.submit(window_query())
    client.cancel(first.id)
    assert real.waits == [2.0]
    cancels = kinds(server, "cancel")
    assert [e.status_code for e in cancels] == [200, 200]
    assert cancels[0].detail == "throttled"


def test_throttled_fault_is_retried(make_client, server, sleeper) -> None:
    server.emulator.faults.add("throttled", times=1)
    client = make_client()
    op = client.submit(window_query())
    assert client.get(op.id) is not None
    assert len(sleeper.waits) == 1 and sleeper.waits[0] >= 1
    assert [e.detail for e in kinds(server, "run_query")][0] == "throttled"


def test_transport_error_is_retried(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    holder: dict[str, EmulatorServer] = {}
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # Nothing listens on the port yet; the "outage" ends when the client backs off.
        waits.append(seconds)
        if "srv" not in holder:
            holder["srv"] = EmulatorServer(EmulatorConfig(orders_per_shop=5, token=TOKEN), port=port).start()

    client = ShopifyBulkClient(f"http://127.0.0.1:{port}", TOKEN, "2026-10",
                               ClientOptions(poll_interval_seconds=0.0, poll_max_attempts=5, sleep=sleep))
    try:
        result = client.run(window_query(), tmp_path / "r.jsonl")
        assert result.object_count > 0
        assert waits[0] == 1.0
        assert len(holder["srv"].emulator.log_of("run_query")) == 1
    finally:
        client.close()
        if "srv" in holder:
            holder["srv"].stop()


def test_transport_error_gives_up(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = ShopifyBulkClient(f"http://127.0.0.1:{port}", TOKEN, "2026-10",
                               ClientOptions(sleep=waits.append, max_request_retries=2))
    try:
        with pytest.raises(ShopifyRequestError, match="transport error"):
            client.submit(window_query())
        assert waits == [1.0, 2.0]
    finally:
        client.close()


def test_401_is_not_retried_and_hides_the_token(make_client, server, sleeper, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "shpat_WRONG_secret_token_987"
    client = make_client(token=wrong)
    with pytest.raises(InvalidToken, match="401") as exc:
        client.submit(window_query())
    assert wrong not in str(exc.value) and wrong not in repr(exc.value)
    assert wrong not in caplog.text
    assert sleeper.waits == []
    assert [e.status_code for e in kinds(server, "graphql")] == [401]


def test_wrong_endpoint_path_is_a_clear_error(server, sleeper) -> None:
    client = ShopifyBulkClient(server.base_url + "/not-a-shop", TOKEN, "2026-10", ClientOptions(sleep=sleeper))
    try:
        with pytest.raises(ShopifyRequestError, match="404.*SHOPIFY_<CODE>_STORE"):
            client.submit(window_query())
        assert sleeper.waits == []
    finally:
        client.close()


# --- submit: OPERATION_IN_PROGRESS, INVALID -------------------------------------------------

def test_operation_in_progress_is_waited_out(make_client, server, sleeper, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="shopify_sync")
    blocker = "gid://shopify/BulkOperation/424242"
    server.emulator.faults.add("operation_in_progress", times=2, blocking_ids=[blocker])
    op = make_client().submit(window_query())
    assert op.status == "CREATED"
    assert sleeper.waits == [15.0, 30.0]
    assert blocker in caplog.text
    assert len(kinds(server, "run_query")) == 3


def test_operation_in_progress_detected_by_message_before_2025_01(make_client, server, sent, sleeper) -> None:
    server.emulator.faults.add("operation_in_progress", times=1)
    make_client("2024-10").submit(window_query())
    assert sleeper.waits == [15.0]
    assert all("message code" not in d for d in sent.documents)


def test_real_concurrency_limit_waits_for_the_running_job(make_client, server, sleeper, caplog) -> None:
    # Before 2026-01 only one bulk query may run per shop; the second submit waits until
    # the first one has completed (the sleeper advances the emulator's clock).
    caplog.set_level(logging.WARNING, logger="shopify_sync")
    server.emulator.config.completion_seconds = 40
    client = make_client("2025-10")
    first = client.submit(window_query())
    second = client.submit(empty_window_query())  # a different job: it has to wait
    assert second.id != first.id
    assert sleeper.waits == [15.0, 30.0]
    assert first.id in caplog.text


def test_operation_in_progress_timeout(make_client, server, sleeper) -> None:
    server.emulator.faults.add("operation_in_progress", times=None,
                               blocking_ids=["gid://shopify/BulkOperation/1", "gid://shopify/BulkOperation/2"])
    client = make_client(in_progress_max_wait=300)
    with pytest.raises(OperationInProgressTimeout, match="BulkOperation/2") as exc:
        client.submit(window_query())
    assert exc.value.blocking_ids == ["gid://shopify/BulkOperation/1", "gid://shopify/BulkOperation/2"]
    assert sum(sleeper.waits) <= 300


def test_invalid_query_is_not_retried(make_client, server, sleeper) -> None:
    client = make_client()
    with pytest.raises(BulkQueryInvalid, match="at least one connection") as exc:
        client.submit("{ shop { name } }")
    assert exc.value.codes == ["INVALID"]
    assert sleeper.waits == []
    assert len(kinds(server, "run_query")) == 1


def test_graphql_syntax_error_is_not_retried(make_client, server, sleeper) -> None:
    # The inner query is a variable, so a broken one is a userError, not a document error.
    client = make_client()
    with pytest.raises(BulkQueryInvalid):
        client.submit("{ orders { edges { node { id }")
    assert sleeper.waits == []


# --- poll: terminal states, budget -----------------------------------------------------------

@pytest.mark.parametrize("code", ["INTERNAL_SERVER_ERROR", "TIMEOUT"])
def test_failed_operation_raises_typed_error(make_client, server, code) -> None:
    server.emulator.faults.add("bulk_failed", error_code=code, partial=True)
    client = make_client()
    op = client.submit(window_query())
    with pytest.raises(BulkOperationFailed) as exc:
        client.poll(op.id)
    assert exc.value.error_code == code and exc.value.operation_id == op.id
    assert code in str(exc.value) and op.id in str(exc.value)
    assert exc.value.partial_data_url is not None
    assert exc.value.retryable


@pytest.mark.parametrize("code", ["INTERNAL_SERVER_ERROR", "TIMEOUT"])
def test_run_resubmits_transient_failures(make_client, server, sleeper, tmp_path, code) -> None:
    server.emulator.faults.add("bulk_failed", times=2, error_code=code)
    submitted: list[str] = []
    result = make_client().run(window_query(), tmp_path / "r.jsonl", on_submitted=lambda op: submitted.append(op.id))
    assert len(submitted) == 3 and len(set(submitted)) == 3
    assert result.operation.id == submitted[-1]
    assert result.object_count > 0
    assert len(kinds(server, "run_query")) == 3
    assert [w for w in sleeper.waits if w >= 30] == [30.0, 60.0]


def test_run_gives_up_after_max_resubmits(make_client, server, tmp_path) -> None:
    server.emulator.faults.add("bulk_failed", times=None, error_code="INTERNAL_SERVER_ERROR")
    with pytest.raises(BulkOperationFailed, match="after 2 resubmissions") as exc:
        make_client(max_resubmits=2).run(window_query(), tmp_path / "r.jsonl")
    assert exc.value.error_code == "INTERNAL_SERVER_ERROR"
    assert len(kinds(server, "run_query")) == 3


def test_access_denied_fails_at_once(make_client, server, sleeper, tmp_path) -> None:
    server.emulator.faults.add("bulk_failed", times=None, error_code="ACCESS_DENIED")
    with pytest.raises(AccessDenied) as exc:
        make_client().run(window_query(), tmp_path / "r.jsonl")
    msg = str(exc.value)
    assert "read_orders" in msg and "read_all_orders" in msg and "non-bulk" in msg
    assert exc.value.operation_id is not None and exc.value.operation_id in msg
    assert len(kinds(server, "run_query")) == 1
    assert all(w < 30 for w in sleeper.waits)


def test_canceled_operation(make_client, server) -> None:
    server.emulator.config.completion_seconds = 600
    client = make_client()
    op = client.submit(window_query())
    canceling = client.cancel(op.id)
    assert canceling is not None and canceling.status in {"CANCELING", "CANCELED"}
    with pytest.raises(BulkOperationCanceled, match=op.id):
        client.poll(op.id)


def test_cancel_of_completed_operation_is_harmless(make_client) -> None:
    client = make_client()
    op = client.poll(client.submit(window_query()).id)
    again = client.cancel(op.id)
    assert again is not None and again.status == "COMPLETED"
    assert client.cancel("gid://shopify/BulkOperation/1") is None


def test_second_cancel_returns_the_operation_and_logs_no_warning(make_client, server, caplog) -> None:
    server.emulator.config.completion_seconds = 600
    server.emulator.config.cancel_seconds = 60
    client = make_client()
    op = client.submit(window_query())
    server.emulator.advance(300)  # RUNNING, counters growing
    first = client.cancel(op.id)
    assert first is not None and first.status == "CANCELING" and first.object_count > 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shopify_sync.shopify.client"):
        second = client.cancel(op.id)
    assert second is not None and second.status == "CANCELING"
    assert second.object_count == first.object_count  # not reset by the cancel
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "already CANCELING" in caplog.records[0].getMessage()
    server.emulator.advance(60)
    with pytest.raises(BulkOperationCanceled, match=op.id):
        client.poll(op.id)
    final = client.get(op.id)
    assert final is not None and final.object_count == first.object_count and final.partial_data_url is None


def test_expired_operation(make_client, server) -> None:
    client = make_client()
    op = client.poll(client.submit(window_query()).id)
    server.emulator.advance(8 * 86400)
    with pytest.raises(BulkOperationExpired, match=op.id):
        client.poll(op.id)


def test_poll_budget_exhausted_cancels_the_operation(make_client, server, sleeper) -> None:
    server.emulator.config.completion_seconds = 3600
    client = make_client(poll_interval_seconds=5, poll_max_attempts=4)
    op = client.submit(window_query())
    with pytest.raises(PollBudgetExhausted, match="4 polls") as exc:
        client.poll(op.id)
    assert exc.value.operation_id == op.id and exc.value.cancel_sent
    assert sleeper.waits == [5.0, 5.0, 5.0]
    assert len(kinds(server, "poll")) == 4
    cancels = kinds(server, "cancel")
    assert [(e.operation_id, e.status_code) for e in cancels] == [(op.id, 200)]
    assert server.emulator.operations("DEMO")[0].status in {"CANCELING", "CANCELED"}


class _CompleteBeforeCancel:
    """httpx request hook: moves the emulator's clock on just before a cancel goes out, so the
    job completes between the client's last poll and its cancel (the real-payload race)."""

    def __init__(self, server: EmulatorServer, seconds: float) -> None:
        self.server, self.seconds = server, seconds

    def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST" and b"bulkOperationCancel" in request.content:
            self.server.emulator.advance(self.seconds)


def _race_client(server: EmulatorServer, sleeper: Sleeper) -> ShopifyBulkClient:
    server.emulator.config.completion_seconds = 60
    http = httpx.Client(timeout=30, event_hooks={"request": [_CompleteBeforeCancel(server, 3600)]})
    options = ClientOptions(http=http, sleep=sleeper, poll_interval_seconds=5, poll_max_attempts=4)
    return ShopifyBulkClient(server.shop_base_url("DEMO"), TOKEN, "2026-10", options)


def test_completion_between_last_poll_and_cancel_is_used(server, sleeper, tmp_path, caplog) -> None:
    client = _race_client(server, sleeper)
    seen: list[str] = []
    with caplog.at_level(logging.INFO, logger="shopify_sync.shopify.client"):
        result = client.run(window_query(), tmp_path / "r.jsonl", on_status=lambda op: seen.append(op.status))
    client.close()
    assert result.operation.status == "COMPLETED" and result.operation.url
    lines = (tmp_path / "r.jsonl").read_bytes().splitlines()
    assert result.object_count == len(lines) > 0 and result.bytes == (tmp_path / "r.jsonl").stat().st_size
    assert seen[-1] == "COMPLETED" and len(kinds(server, "poll")) == 4
    assert [e.status_code for e in kinds(server, "cancel")] == [200]
    assert len(kinds(server, "run_query")) == 1  # no resubmission
    messages = [r.getMessage() for r in caplog.records]
    assert any("completed just after the poll budget" in m for m in messages)
    assert not any("cancel requested" in m for m in messages)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


def test_completion_seen_by_the_reread_after_a_failed_cancel(server, sleeper, tmp_path) -> None:
    server.emulator.faults.add("http_5xx", times=None, on={"cancel"}, status=500)
    client = _race_client(server, sleeper)
    result = client.run(window_query(), tmp_path / "r.jsonl")
    client.close()
    assert result.operation.status == "COMPLETED" and result.object_count > 0
    assert len(kinds(server, "run_query")) == 1


def test_slow_job_completes_within_budget(make_client, server, sleeper, tmp_path) -> None:
    server.emulator.config.completion_seconds = 40
    seen: list[str] = []
    result = make_client(poll_interval_seconds=16).run(window_query(), tmp_path / "r.jsonl",
                                                       on_status=lambda op: seen.append(op.status))
    assert result.operation.status == "COMPLETED"
    assert seen[0] in {"CREATED", "RUNNING"} and seen[-1] == "COMPLETED" and "RUNNING" in seen
    assert sleeper.waits == [16.0, 16.0, 16.0]


def test_growing_object_count_while_running(make_client, server, tmp_path) -> None:
    server.emulator.config.completion_seconds = 100
    seen: list[BulkOperation] = []
    result = make_client(poll_interval_seconds=10).run(window_query(), tmp_path / "r.jsonl", on_status=seen.append)
    counts = [op.object_count for op in seen]
    assert counts == sorted(counts) and counts[-1] == result.object_count == len(lines(tmp_path / "r.jsonl"))
    assert any(0 < n < result.object_count for n in counts)


# --- resume -----------------------------------------------------------------------------------

def test_resume_polls_the_stored_operation(make_client, server, tmp_path) -> None:
    server.emulator.config.completion_seconds = 30
    first = make_client().submit(window_query())  # "crash" right after persisting the id
    resumed: list[BulkOperation] = []
    result = make_client(poll_interval_seconds=5).run(window_query(), tmp_path / "r.jsonl", resume_operation_id=first.id,
                               on_submitted=resumed.append)
    assert result.operation.id == first.id
    assert resumed == []
    assert len(kinds(server, "run_query")) == 1


def test_resume_of_completed_operation_just_downloads(make_client, server, tmp_path) -> None:
    client = make_client()
    op = client.poll(client.submit(window_query()).id)
    result = make_client().run(window_query(), tmp_path / "r.jsonl", resume_operation_id=op.id)
    assert result.operation.id == op.id and result.bytes == op.file_size
    assert len(kinds(server, "run_query")) == 1


@pytest.mark.parametrize("state", ["unknown", "canceled", "expired", "failed"])
def test_resume_of_a_dead_operation_resubmits(make_client, server, tmp_path, state) -> None:
    client = make_client()
    if state == "unknown":
        op_id = "gid://shopify/BulkOperation/123"
    else:
        if state == "failed":
            server.emulator.faults.add("bulk_failed", error_code="TIMEOUT")
        if state == "canceled":
            server.emulator.config.completion_seconds = 600
        op_id = client.submit(window_query()).id
        if state == "canceled":
            client.cancel(op_id)
            server.emulator.config.completion_seconds = 0
        if state == "expired":
            client.poll(op_id)
            server.emulator.advance(8 * 86400)
    before = len(kinds(server, "run_query"))
    submitted: list[BulkOperation] = []
    result = make_client().run(window_query(), tmp_path / "r.jsonl", resume_operation_id=op_id,
                               on_submitted=submitted.append)
    assert len(submitted) == 1 and result.operation.id == submitted[0].id != op_id
    assert len(kinds(server, "run_query")) == before + 1
    assert result.object_count > 0


# --- download -----------------------------------------------------------------------------------

def _completed(client: ShopifyBulkClient) -> BulkOperation:
    op = client.poll(client.submit(window_query()).id)
    assert op.url is not None and op.file_size
    return op


def test_download_carries_no_token(make_client, server, tmp_path) -> None:
    client = make_client()
    op = _completed(client)
    assert client.download(op.url, tmp_path / "r.jsonl", op.file_size) == op.file_size
    assert [e.status_code for e in kinds(server, "download")] == [200]
    # The storage host really refuses a request carrying the token (so the 200 above proves its absence).
    refused = httpx.get(op.url, headers={"X-Shopify-Access-Token": TOKEN})
    assert refused.status_code == 403
    assert client.served_version == "2026-10"


def test_download_retried_after_500(make_client, server, sleeper, tmp_path) -> None:
    client = make_client()
    op = _completed(client)
    server.emulator.faults.add("download_500", times=2)
    n = client.download(op.url, tmp_path / "r.jsonl", op.file_size)
    assert n == op.file_size == (tmp_path / "r.jsonl").stat().st_size
    assert [e.status_code for e in kinds(server, "download")] == [500, 500, 200]
    assert not (tmp_path / "r.jsonl.part").exists()


def test_truncated_download_resumes_where_it_broke(make_client, server, tmp_path) -> None:
    client = make_client()
    op = _completed(client)
    clean = tmp_path / "clean.jsonl"
    client.download(op.url, clean, op.file_size)
    server.emulator.faults.add("download_truncated", times=2, fraction=0.3)
    n = client.download(op.url, tmp_path / "r.jsonl", op.file_size)
    assert n == op.file_size
    downloads = kinds(server, "download")[1:]
    # 30 % of the file, then 30 % of the remaining 70 %, then the rest: each retry is a range.
    assert [(e.status_code, e.detail) for e in downloads] == [(200, "truncated"), (206, "truncated"), (206, "")]
    assert (tmp_path / "r.jsonl").read_bytes() == clean.read_bytes()
    assert not (tmp_path / "r.jsonl.part").exists()


def test_size_mismatch_is_never_accepted(make_client, server, tmp_path) -> None:
    client = make_client(download_retries=1)
    op = _completed(client)
    with pytest.raises(Exception, match="fileSize is") as exc:
        client.download(op.url, tmp_path / "r.jsonl", op.file_size + 1)
    assert type(exc.value).__name__ == "DownloadError"
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "r.jsonl.part").exists()
    assert len(kinds(server, "download")) == 2


def test_expired_url_from_storage(make_client, server, tmp_path) -> None:
    client = make_client()
    op = _completed(client)
    server.emulator.faults.add("download_expired", times=None)
    with pytest.raises(ResultUrlExpired, match="expired") as exc:
        client.download(op.url, tmp_path / "r.jsonl", op.file_size, operation_id=op.id)
    assert op.id in str(exc.value) and "7 days" in str(exc.value)
    assert "Signature" not in str(exc.value)
    assert len(kinds(server, "download")) == 1  # not retried


def test_expired_url_by_its_expires_parameter(make_client, server, tmp_path) -> None:
    op = _completed(make_client())
    late = make_client(clock=lambda: time.time() + 8 * 86400)
    with pytest.raises(ResultUrlExpired, match="Expires"):
        late.download(op.url, tmp_path / "r.jsonl", op.file_size)
    assert kinds(server, "download") == []


def test_run_resubmits_when_the_result_url_expired(make_client, server, tmp_path) -> None:
    server.emulator.faults.add("download_expired", times=1)
    result = make_client().run(window_query(), tmp_path / "r.jsonl")
    assert len(kinds(server, "run_query")) == 2
    assert result.bytes == result.operation.file_size


# --- secrets --------------------------------------------------------------------------------------

def test_token_never_in_logs_exceptions_or_results(make_client, server, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.emulator.faults.add("http_5xx", times=1, status=502)
    server.emulator.faults.add("http_429", times=1, retry_after=1)
    server.emulator.faults.add("operation_in_progress", times=1)
    server.emulator.faults.add("throttled", times=1)
    server.emulator.faults.add("bulk_failed", times=1, error_code="TIMEOUT")
    server.emulator.faults.add("download_500", times=1)
    client = make_client()
    result = client.run(window_query(), tmp_path / "r.jsonl")
    texts = [caplog.text, repr(client), repr(result), str(result)]
    errors: list[BaseException] = []
    server.emulator.faults.add("bulk_failed", times=1, error_code="ACCESS_DENIED")
    for call in (lambda: client.run(window_query(), tmp_path / "x.jsonl"),
                 lambda: client.submit("{ shop { name } }")):
        with pytest.raises(Exception) as exc:  # noqa: PT011 - each raises its own typed error
            call()
        errors.append(exc.value)
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [caplog.text]
    assert isinstance(errors[0], AccessDenied) and isinstance(errors[1], BulkQueryInvalid)
    for text in texts:
        assert TOKEN not in text
    assert "Signature=" not in repr(result)


def test_graphql_errors_are_reported(make_client) -> None:
    client = make_client()
    with pytest.raises(ShopifyGraphQLError):
        client._graphql("query { nope }", {}, "probe")


def test_s3_style_presigned_expiry_is_detected(make_client, server, tmp_path) -> None:
    url = (f"{server.files_base_url}/bucket/bulk-1.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=604800&X-Amz-Signature=abc")
    with pytest.raises(ResultUrlExpired, match="2026-01-08T00:00:00Z"):
        make_client().download(url, tmp_path / "r.jsonl", 10)
    assert kinds(server, "download") == []


def test_failed_on_submitted_cancels_the_orphan(make_client, server, tmp_path) -> None:
    server.emulator.config.completion_seconds = 600

    def persist(op: BulkOperation) -> None:
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        make_client().run(window_query(), tmp_path / "r.jsonl", on_submitted=persist)
    (op,) = server.emulator.operations("DEMO")
    assert op.status in {"CANCELING", "CANCELED"}
    assert [e.operation_id for e in kinds(server, "cancel")] == [op.gid]
    assert kinds(server, "poll") == []


def test_signed_url_is_not_logged(make_client, server, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    result = make_client().run(window_query(), tmp_path / "r.jsonl")
    signature = dict(httpx.URL(result.operation.url).params)["Signature"]
    assert "bulk-operation-outputs" in caplog.text  # httpx did log the download request
    assert signature not in caplog.text


@pytest.mark.parametrize("block", [1, 2, 3, 1 << 20])
def test_count_lines_counts_non_empty_lines_across_blocks(tmp_path, block):
    from shopify_sync.shopify.download import count_lines

    cases = [(b"", 0), (b"a\n", 1), (b"a", 1), (b"a\nb", 2), (b"a\n\nb\n", 2), (b"\n\n\n", 0), (b"ab\ncd\n", 2),
             (b"\nab\n\n\ncd", 2), (b"abc\ndef\n\nghi\n", 3), (b"abcd\nefgh", 2)]
    for data, expected in cases:
        (tmp_path / "f.jsonl").write_bytes(data)
        assert count_lines(tmp_path / "f.jsonl", block_bytes=block) == expected, data


def test_count_lines_durably_counts_and_flushes_the_file(tmp_path, monkeypatch):
    from shopify_sync.shopify import download

    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"b":2}\n{"c":3}')
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(download.os, "fsync", fsync)
    assert download.count_lines_durably(path) == 3
    assert synced == [path.stat().st_ino]


def test_count_lines_durably_raises_a_failed_flush(tmp_path, monkeypatch):
    import errno

    from shopify_sync.shopify import download

    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a":1}\n')

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(download.os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        download.count_lines_durably(path)

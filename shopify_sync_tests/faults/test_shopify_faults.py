"""Fault suite, issue 14 "Prove it": every fault the Shopify emulator offers, through a real sync.

One daily run of day D1 per fault on a fresh warehouse, judged against a clean run of D1 on
the same dataset (``clean_run``). A transient fault must be absorbed inside the run (request
retries, download retries, a resubmitted operation) and the run end exactly as the clean
one. A fatal one (ACCESS_DENIED, a malformed or short result file) must fail the run with
one line naming the cause, not be relaunched (no retry can help), leave the watermark
untouched, and the same command run again once Shopify behaves must end exactly as the
clean run. Then the token scan.

The client's waits (Retry-After, the 15 s OPERATION_IN_PROGRESS and 30 s resubmission
backoffs) are recorded and shortened to 50 ms through ``ClientOptions.sleep``, the client's
seam for this: the suite checks that the client waited, not the clock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@dataclass(frozen=True)
class Case:
    kind: str
    params: dict[str, object] = field(default_factory=dict)
    times: int | None = 1
    cause: str | None = None  # fatal: what the failure line names; None: retried within the run


TRANSIENT = {
    "throttled": Case("throttled", times=2),
    "http_429": Case("http_429", {"retry_after": 1}, times=2),
    "http_5xx": Case("http_5xx", {"status": 503}, times=2),
    "operation_in_progress": Case("operation_in_progress", {"root": "orders"}),
    "bulk_failed-INTERNAL_SERVER_ERROR": Case("bulk_failed", {"error_code": "INTERNAL_SERVER_ERROR",
                                                              "partial": True, "root": "orders"}),
    "bulk_failed-TIMEOUT": Case("bulk_failed", {"error_code": "TIMEOUT", "root": "orders"}),
    "slow_completion": Case("slow_completion", {"seconds": 2, "root": "orders"}),
    "download_500": Case("download_500", times=2),
    "download_truncated": Case("download_truncated", {"fraction": 0.3}, times=2),
    "download_expired": Case("download_expired"),
}
FATAL = {
    "bulk_failed-ACCESS_DENIED": Case("bulk_failed", {"error_code": "ACCESS_DENIED", "root": "orders"},
                                      cause="ACCESS_DENIED"),
    "large_result": Case("large_result", {"size_bytes": 40_000, "root": "orders"}, cause="IngestError"),
    "malformed_result-truncated_line": Case("malformed_result", {"defect": "truncated_line", "root": "orders"},
                                            cause="broken JSON"),
    "malformed_result-not_json": Case("malformed_result", {"defect": "not_json", "root": "orders"},
                                      cause="broken JSON"),
    "malformed_result-orphan_child": Case("malformed_result", {"defect": "orphan_child", "root": "orders"},
                                          cause="does not appear before this line"),
    "object_count_mismatch": Case("object_count_mismatch", {"missing": 2, "root": "orders"},
                                  cause="ObjectCountMismatch"),
}


@pytest.fixture
def clean(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return clean_outcome(tmp_path_factory, (D1,))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the Shopify client asked for; each one sleeps at most 50 ms."""
    from shopify_sync.shopify import resource
    from shopify_sync.shopify.options import ClientOptions

    asked: list[float] = []

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(min(seconds, 0.05))

    monkeypatch.setattr(resource, "ClientOptions", functools.partial(ClientOptions, sleep=sleep))
    return asked


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waits: list[float]) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, f"sqlite:///{tmp_path}/warehouse.db", anchor=ANCHOR, stock_clock=ANCHOR,
                            extra_env={"SHOPIFY_SYNC_API_TOKEN": API_TOKEN})


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_a_transient_shopify_fault_is_retried_within_the_run(
    name: str, harness: Harness, clean: Outcome, waits: list[float]
) -> None:
    case, h = TRANSIENT[name], harness
    fault = h.emulator.faults.add(case.kind, times=case.times, **case.params)
    started = time.monotonic()
    run = h.daily("DEMO", D1)
    seconds = time.monotonic() - started
    assert run.success, _first_failure(run)
    assert fault.fired == case.times  # the fault really happened, as often as armed
    [job] = order_jobs(h)
    assert job.status == "completed" and job.open_lane is None
    assert_like_clean(h, clean)
    assert_no_secrets(h)
    print(f"\n[fault 14 shopify {name}] run ok in {seconds:.1f} s; {len(h.run_queries('DEMO'))} orders "
          f"submissions (refused ones included); client waits asked: {[round(w, 2) for w in waits if w > 0.05]}")


@pytest.mark.parametrize("name", list(FATAL))
def test_a_fatal_shopify_fault_fails_cleanly_then_the_same_command_converges(
    name: str, harness: Harness, clean: Outcome
) -> None:
    from shopify_sync.defs.retry import is_transient

    case, h = FATAL[name], harness
    fault = h.emulator.faults.add(case.kind, times=case.times, **case.params)
    started = time.monotonic()
    first = h.daily("DEMO", D1)
    seconds = time.monotonic() - started
    assert not first.success and fault.fired == 1
    line = _first_failure(first)
    assert case.cause is not None and case.cause in line and "\n" not in line, line
    assert not is_transient(h.instance, first.run_id)  # failed at once, and never relaunched
    assert h.watermark("DEMO") is None  # untouched (a fresh warehouse has none)
    [job] = order_jobs(h)
    assert job.status == "failed" and "\n" not in job.last_error
    if "IngestError" in line:  # chunks before the bad line are in; the bad file is not reused
        assert job.lines_committed > 0 and job.archive_key is None and job.bulk_operation_id is None
    # Once Shopify behaves, running the same command again is all an operator does.
    second = h.daily("DEMO", D1)
    assert second.success, _first_failure(second)
    [job] = order_jobs(h)
    assert job.status == "completed" and job.open_lane is None
    assert_like_clean(h, clean)
    assert_no_secrets(h)
    print(f"\n[fault 14 shopify {name}] failed in {seconds:.1f} s: {line}")


def _first_failure(result: object) -> str:
    from shopify_sync.launch.inprocess import first_failure

    return first_failure(result)  # type: ignore[arg-type]

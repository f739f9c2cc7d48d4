"""``step_telemetry``: how every sync step reports, and how every failed one is closed.

A step records ``<step> started`` when it begins and ``<step> succeeded`` when its body
returns. Inside, ``advance`` moves to a sub-step (requested → polling → downloading)
with its own ``started`` record, and ``report`` adds fields to the closing record.
Any exception, ``KeyboardInterrupt`` and Dagster's interrupts included, marks the
job failed with the error's one scrubbed line and records ``failed`` (prefixed with
the step it happened in), then propagates unchanged.

``completed`` is a terminal step: it is the run's last record (SPEC §6), so it is
written once, when the step has succeeded, never as "started".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Unpack

from shopify_sync.errors import ErrorSummary, summarize_error
from shopify_sync.shopify.errors import DownloadError, ShopifyError
from shopify_sync.sync.context import StepContext
from shopify_sync.telemetry import RecordFields, SyncTelemetry
from shopify_sync.vocab import TERMINAL_STEPS, Mode, Step, StepStatus
from shopify_sync.warehouse import IngestError, jobs


class StepRecorder:
    """The records of one running step (for one shop)."""

    def __init__(self, telemetry: SyncTelemetry, step: Step) -> None:
        self._telemetry = telemetry
        self.current = step
        self._closing: RecordFields = {}

    def record(self, step: Step, status: StepStatus, **fields: Unpack[RecordFields]) -> None:
        self._telemetry.record(step, status, **fields)

    def advance(self, step: Step, **fields: Unpack[RecordFields]) -> None:
        """The step moves on to ``step``: recorded as started; a failure from now on names it."""
        self.current = step
        self.record(step, StepStatus.STARTED, **fields)

    def report(self, **fields: Unpack[RecordFields]) -> None:
        """Fields for the record that closes the step (the last value of a field wins)."""
        self._closing.update(fields)

    def begin(self) -> None:
        """The step's first record (none for a terminal step: it is written once, at the end)."""
        if self.current not in TERMINAL_STEPS:
            self.record(self.current, StepStatus.STARTED)

    def succeed(self) -> None:
        """The record that closes the step, with what ``report`` gathered."""
        self.record(self.current, StepStatus.SUCCEEDED, **self._closing)


@contextmanager
def step_telemetry(ctx: StepContext, shop: str, partition_key: str, step: Step) -> Iterator[StepRecorder]:
    """Report one step of ``shop``'s part of the run; on failure close its job as failed."""
    recorder = StepRecorder(ctx.telemetry(shop), step)
    try:
        recorder.begin()
        yield recorder
        recorder.succeed()
    except BaseException as exc:
        fail_step(ctx, shop, partition_key, recorder.current, exc)
        raise


def fail_step(ctx: StepContext, shop: str, partition_key: str, step: Step, exc: BaseException) -> None:
    """Mark the job failed with ``last_error`` and record ``failed``; never masks ``exc``."""
    error = summarize_error(exc)
    try:
        # A refused run must not touch the job of the run that holds the shop.
        job = None if isinstance(exc, jobs.ShopBusy) else ctx.current_job(shop, partition_key)
        if job is not None:
            jobs.fail_job(ctx.engine, job.job_id, error.one_line(), forget_operation=operation_is_dead(exc),
                          forget_archive=archive_is_bad(exc) and ctx.run.mode is not Mode.REPLAY)
    except Exception:  # noqa: BLE001 - the original error is what the operator needs
        pass
    try:
        ctx.telemetry(shop).record(Step.FAILED, StepStatus.FAILED,
                                   error=ErrorSummary(error.type, f"{step}: {error.message}"))
    except Exception:  # noqa: BLE001 - idem; the run-status sensor adds the record later
        pass


def archive_is_bad(exc: BaseException) -> bool:
    """The job's archived file cannot be loaded (malformed JSONL): the next attempt must fetch
    a new one. A replay keeps it: re-reading that very file is what a replay is for."""
    return isinstance(exc, IngestError) and exc.bad_file


def operation_is_dead(exc: BaseException) -> bool:
    """The stored bulk operation ended for good (FAILED, CANCELED, budget-cancelled):
    re-polling it would only fail again, so the next attempt must submit a new one.

    Download errors are excluded: their operation COMPLETED and its file can be fetched
    again (the client resubmits by itself if the URL has expired).
    """
    return (isinstance(exc, ShopifyError) and not isinstance(exc, DownloadError)
            and bool(getattr(exc, "operation_id", None)))

"""The sync engine the Dagster assets call (SPEC §3): modes, windows, sync_job, resume, watermark.

The assets are thin: every decision about *what* to fetch and *whether* to resume
lives here, so the CLI, the schedule, backfills and the API all behave alike. State
between steps goes through the warehouse (``sync_job``) and the object store, never
through local files or IO managers, so a step can run in another process (or after
a crash) and pick up where the last one stopped.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shopify_sync.shopify.queries import WindowField, orders_query

# Run tags (public for the CLI, the API and sensors).
TAG_MODE = "shopify_sync/mode"
TAG_INITIATOR = "shopify_sync/initiator"
TAG_SHOP = "shopify_sync/shop"
TAG_REPLAY_OF = "shopify_sync/replay_of"
TAG_BACKFILL = "dagster/backfill"
TAG_SCHEDULE = "dagster/schedule_name"
TAG_RANGE_START = "dagster/asset_partition_range_start"
TAG_RANGE_END = "dagster/asset_partition_range_end"


class Mode(enum.StrEnum):
    """``job_type`` in telemetry, ``sync_job`` and the raw archive key."""

    DAILY_INCREMENTAL = "DAILY_INCREMENTAL"
    FULL_BACKFILL_EXECUTE = "FULL_BACKFILL_EXECUTE"
    REPLAY = "REPLAY"


class Initiator(enum.StrEnum):
    CRON = "cron"
    USER = "user"
    BACKFILL = "backfill"


def mode_from_tags(tags: Mapping[str, str]) -> Mode:
    """An explicit ``shopify_sync/mode`` tag wins (CLI, API); a Dagster backfill is a backfill."""
    raw = tags.get(TAG_MODE)
    if raw:
        try:
            return Mode(raw)
        except ValueError:
            raise ValueError(f"run tag {TAG_MODE}={raw!r} is not one of {', '.join(m.value for m in Mode)}") from None
    if tags.get(TAG_BACKFILL):
        return Mode.FULL_BACKFILL_EXECUTE
    return Mode.DAILY_INCREMENTAL


def initiator_from_tags(tags: Mapping[str, str]) -> Initiator:
    raw = tags.get(TAG_INITIATOR)
    if raw:
        try:
            return Initiator(raw)
        except ValueError:
            raise ValueError(f"run tag {TAG_INITIATOR}={raw!r} is not one of cron, user, backfill") from None
    if tags.get(TAG_SCHEDULE):
        return Initiator.CRON
    if tags.get(TAG_BACKFILL):
        return Initiator.BACKFILL
    return Initiator.USER


@dataclass(frozen=True)
class Window:
    """Half-open ``[start, end)`` on ``field``; ``end=None`` means "up to now"."""

    field: WindowField
    start: datetime
    end: datetime | None = None

    def query(self) -> str:
        return orders_query(self.field, self.start, self.end)

    def describe(self) -> str:
        end = self.end.isoformat() if self.end else "now"
        return f"{self.field} in [{self.start.isoformat()}, {end})"


def incremental_window(
    watermark: datetime | None, *, now: datetime, floor_days: int, lookback_minutes: int
) -> Window:
    """SPEC §3: ``updated_at >= max(watermark - lookback, now - floor)``; no watermark → floor.

    Open-ended on purpose: anything updated while the bulk job runs is fetched now or,
    at worst, again next time thanks to the lookback; the watermark only advances to
    what was actually fetched.
    """
    floor = now - timedelta(days=floor_days)
    if watermark is None:
        return Window("updated_at", floor)
    return Window("updated_at", max(as_utc(watermark) - timedelta(minutes=lookback_minutes), floor))


def backfill_window(start: datetime, end: datetime) -> Window:
    """SPEC §3: ``created_at`` in the selected days, no floor."""
    return Window("created_at", start, end)


def as_utc(ts: datetime) -> datetime:
    """Databases hand back naive datetimes (SQLite, MariaDB); ours are always UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def next_watermark(old: datetime | None, fetched_max: datetime | None) -> datetime | None:
    """``max(old, MAX(updated_at) fetched)``: never backwards, unchanged when nothing came."""
    if fetched_max is None:
        return as_utc(old) if old else None
    if old is None:
        return as_utc(fetched_max)
    return max(as_utc(old), as_utc(fetched_max))


def error_summary(exc: BaseException) -> dict[str, str]:
    """``{type, message}`` for telemetry and ``sync_job.last_error``.

    The typed errors of the client and ``ConfigError`` never carry tokens; the
    message is cut to one line so a stack trace never lands in a record.
    """
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"type": type(exc).__name__, "message": message[:500]}


# --------------------------------------------------------------------------------------
# The engine: one instance per (run, step); the assets call one method each.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """What every step knows about the run it belongs to (from the Dagster run record)."""

    run_id: str
    mode: Mode
    initiator: Initiator
    created_at: datetime
    replay_of: str | None = None

    @classmethod
    def from_tags(cls, run_id: str, tags: Mapping[str, str], created_at: datetime) -> RunInfo:
        mode = mode_from_tags(tags)
        replay_of = tags.get(TAG_REPLAY_OF) or None
        if mode is Mode.REPLAY and not replay_of:
            raise ValueError(f"a REPLAY run needs the run tag {TAG_REPLAY_OF}=<run id of the archived sync>")
        return cls(run_id, mode, initiator_from_tags(tags), as_utc(created_at), replay_of)


@dataclass
class FetchOutcome:
    """What ``shopify_bulk_jsonl`` did for one shop."""

    shop: str
    job_id: Any
    partition_key: str
    window: Window
    bulk_operation_id: str | None
    object_count: int | None
    bytes: int | None  # None when an archived file was reused (not re-downloaded)
    archive_key: str
    adopted: bool
    reused_archive: bool
    watermark_before: datetime | None


@dataclass
class LoadOutcome:
    shop: str
    job_id: Any
    objects: int
    rows: dict[str, int]
    max_updated_at: datetime | None
    start_line: int
    commerce_events: int
    # How the ingest went: what the UI shows next to the rows (rows/s, older versions skipped,
    # chunks redone as upserts because a "new" order existed after all).
    ingest_seconds: float = 0.0
    orders_skipped_older: int = 0
    fresh_conflicts: int = 0
    # Where the commerce events went: this run's object, or an earlier attempt's that the
    # load completed (see ``sync_job.events_key``).
    events_key: str | None = None


@dataclass
class FinishOutcome:
    shop: str
    watermark_before: datetime | None
    watermark_after: datetime | None
    job_completed: bool


class SyncEngine:
    """The sync of one run, step by step. Stateless between steps: everything is re-read."""

    def __init__(
        self,
        *,
        run: RunInfo,
        settings: Any,
        engine: Any,
        store: Any,
        shopify: Any | None = None,
        chunk_rows: int | None = None,
        log: Any | None = None,
    ) -> None:
        self.run = run
        self.settings = settings
        self.engine = engine
        self.store = store
        self.shopify = shopify
        self.chunk_rows = chunk_rows or settings.chunk_rows
        self.log = log

    # -- helpers -------------------------------------------------------------------

    def _info(self, msg: str) -> None:
        if self.log is not None:
            self.log.info(msg)

    def telemetry(self, shop: str, job: Any | None = None) -> Any:
        from shopify_sync.telemetry import SyncTelemetry

        return SyncTelemetry(
            self.store,
            run_id=self.run.run_id,
            shop=shop,
            job_type=self.run.mode.value,
            initiator=self.run.initiator.value,
            run_created_at=self.run.created_at,
            process_initiated_at=self.run.created_at,
        )

    def current_job(self, shop: str, partition_key: str) -> Any | None:
        """The unfinished sync_job of this (shop, mode, partition): the hand-off between steps."""
        from shopify_sync.warehouse import jobs

        return jobs.find_resumable_job(
            self.engine, shop=shop, job_type=self.run.mode.value, partition_key=partition_key
        )

    def _require_job(self, shop: str, partition_key: str, step: str) -> Any:
        job = self.current_job(shop, partition_key)
        if job is None or not job.archive_key:
            raise RuntimeError(
                f"{step}: no fetched raw file for shop {shop}, {self.run.mode.value} {partition_key}; "
                "materialize shopify_bulk_jsonl for this partition first"
            )
        return job

    # -- step 1: shopify_bulk_jsonl ------------------------------------------------

    def fetch(self, shop: str, partition_key: str, first_day: Any, start: datetime, end: datetime) -> FetchOutcome:
        """Create or adopt the sync_job, then request → poll → download → archive.

        The bulk operation id is stored (``on_submitted``) before the first poll, so a
        crash anywhere after submission re-polls the same operation instead of paying
        for a second one; an already archived file is reused as is.
        """
        from shopify_sync.warehouse import jobs

        tel = self.telemetry(shop)
        step = ["initiated"]
        try:
            watermark_before = jobs.get_watermark(self.engine, shop)
            job = self.current_job(shop, partition_key)
            adopted = job is not None
            if self.run.mode is Mode.REPLAY:
                return self._adopt_archive(tel, shop, partition_key, job, watermark_before)
            if job is None:
                window = (
                    incremental_window(
                        watermark_before,
                        now=datetime.now(UTC),
                        floor_days=self.settings.watermark_floor_days,
                        lookback_minutes=self.settings.lookback_minutes,
                    )
                    if self.run.mode is Mode.DAILY_INCREMENTAL
                    else backfill_window(start, end)
                )
                job = jobs.create_job(
                    self.engine,
                    run_id=self.run.run_id,
                    shop=shop,
                    job_type=self.run.mode.value,
                    partition_key=partition_key,
                    initiator=self.run.initiator.value,
                    window_start=window.start,
                    window_end=window.end,
                )
            else:
                window = self._job_window(job)
                jobs.update_job(self.engine, job.job_id, run_id=self.run.run_id, status="running",
                                attempts=(job.attempts or 0) + 1)
                self._info(f"{shop}: continuing unfinished sync_job {job.job_id} ({window.describe()})")
            tel.record("initiated", "started", window_start=window.start, window_end=window.end,
                       watermark_before=watermark_before)

            if job.archive_key and self.store.exists(job.archive_key):
                self._info(f"{shop}: raw file already archived at {job.archive_key}; not calling Shopify")
                return FetchOutcome(shop, job.job_id, partition_key, window, job.bulk_operation_id,
                                    job.object_count, None, job.archive_key, adopted, True, watermark_before)

            return self._fetch_from_shopify(tel, step, shop, partition_key, first_day, job, window,
                                            adopted, watermark_before)
        except BaseException as exc:
            self._fail(tel, shop, partition_key, step[0], exc)
            raise

    def _job_window(self, job: Any) -> Window:
        field: WindowField = "updated_at" if self.run.mode is Mode.DAILY_INCREMENTAL else "created_at"
        return Window(field, as_utc(job.window_start), as_utc(job.window_end) if job.window_end else None)

    def _fetch_from_shopify(
        self, tel: Any, step: list[str], shop: str, partition_key: str, first_day: Any, job: Any,
        window: Window, adopted: bool, watermark_before: datetime | None,
    ) -> FetchOutcome:
        import tempfile
        from pathlib import Path

        from shopify_sync.storage import raw_key
        from shopify_sync.warehouse import jobs, restart_job_ingest

        if self.shopify is None:
            raise RuntimeError("the Shopify resource is not configured for this run")
        job_id = job.job_id
        seen: set[str] = set()

        def on_submitted(op: Any) -> None:
            jobs.update_job(self.engine, job_id, bulk_operation_id=op.id, status="polling")
            seen.add("requested")
            step[0] = "requested"
            tel.record("requested", "succeeded", bulk_operation_id=op.id)

        def on_status(op: Any) -> None:
            status = str(getattr(op, "status", "")).upper()
            if "polling" not in seen:
                seen.add("polling")
                step[0] = "polling"
                tel.record("polling", "started", bulk_operation_id=op.id)
            if status.endswith("COMPLETED") and "downloading" not in seen:
                seen.add("downloading")
                step[0] = "downloading"
                tel.record("downloading", "started", bulk_operation_id=op.id,
                           object_count=getattr(op, "object_count", None))

        step[0] = "requested"
        if job.bulk_operation_id:
            self._info(f"{shop}: re-polling bulk operation {job.bulk_operation_id} instead of submitting a new one")
        with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp, \
                self.shopify.client_for(shop, log=self.log) as client:
            dest = Path(tmp) / "bulk.jsonl"
            result = client.run(window.query(), dest, resume_operation_id=job.bulk_operation_id,
                                on_submitted=on_submitted, on_status=on_status)
            op_id = result.operation.id
            if op_id != job.bulk_operation_id and "requested" not in seen:
                jobs.update_job(self.engine, job_id, bulk_operation_id=op_id)
            step[0] = "downloading"
            key = raw_key(shop, self.run.mode.value, first_day, self.run.run_id)
            # Archived before any parsing: the audit trail and the replay source.
            self.store.put_file(key, result.path)
            size = int(result.bytes)
        with self.engine.begin() as conn:
            jobs.mark_downloaded(conn, job_id, archive_key=key, object_count=result.object_count)
            if job.lines_committed:
                # A new file for a job whose ingest had begun on another one (its archive
                # lost, the operation resubmitted): line numbers do not carry over.
                restart_job_ingest(conn, job_id)
        if job.lines_committed:
            self._info(f"{shop}: a new file replaces the one {job.lines_committed} lines of which were "
                       "committed; the ingest starts again at its first line")
        self._info(f"{shop}: bulk operation {op_id}: {result.object_count} objects, {size} bytes archived at {key}")
        return FetchOutcome(shop, job_id, partition_key, window, op_id, result.object_count, size, key,
                            adopted, False, watermark_before)

    def _adopt_archive(
        self, tel: Any, shop: str, partition_key: str, job: Any | None, watermark_before: datetime | None
    ) -> FetchOutcome:
        """REPLAY: point a new sync_job at the raw file archived by ``replay_of``."""
        from shopify_sync.warehouse import jobs

        source = next((j for j in archived_jobs(self.engine, str(self.run.replay_of)) if j.shop == shop), None)
        if source is None or not source.archive_key or not self.store.exists(source.archive_key):
            raise RuntimeError(f"no archived raw file of run {self.run.replay_of!r} for shop {shop}")
        window = Window("updated_at" if source.job_type == Mode.DAILY_INCREMENTAL.value else "created_at",
                        as_utc(source.window_start), as_utc(source.window_end) if source.window_end else None)
        adopted = job is not None
        if job is None:
            job = jobs.create_job(self.engine, run_id=self.run.run_id, shop=shop, job_type=Mode.REPLAY.value,
                                  partition_key=partition_key, initiator=self.run.initiator.value,
                                  window_start=window.start, window_end=window.end)
        jobs.update_job(self.engine, job.job_id, run_id=self.run.run_id, archive_key=source.archive_key,
                        object_count=source.object_count, bulk_operation_id=source.bulk_operation_id,
                        status="downloaded")
        tel.record("initiated", "started", window_start=window.start, window_end=window.end,
                   bulk_operation_id=source.bulk_operation_id)
        return FetchOutcome(shop, job.job_id, partition_key, window, source.bulk_operation_id,
                            source.object_count, None, source.archive_key, adopted, True, watermark_before)

    # -- step 2: order_header / order_line_item / order_refund ----------------------

    def load(self, shop: str, partition_key: str) -> LoadOutcome:
        """Upsert the archived JSONL, resuming after the last committed chunk."""
        import tempfile
        from pathlib import Path

        from shopify_sync.storage.keys import commerce_telemetry_key
        from shopify_sync.telemetry import write_commerce_events
        from shopify_sync.warehouse import delete_job_changes, ingest_jsonl, iter_job_changes, jobs

        tel = self.telemetry(shop)
        try:
            job = self._require_job(shop, partition_key, "order tables")
            start_line = int(job.lines_committed or 0)
            tel.record("upserting", "started", bulk_operation_id=job.bulk_operation_id,
                       object_count=job.object_count)
            with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp:
                path = Path(tmp) / Path(job.archive_key).name
                self.store.download_file(job.archive_key, path)
                if start_line:
                    self._info(f"{shop}: resuming the ingest after line {start_line}")
                result = ingest_jsonl(self.engine, path, shop=shop, job_id=job.job_id,
                                      chunk_rows=self.chunk_rows, start_line=start_line)
            # Every committed chunk's changes, an earlier attempt's included (stored with the
            # chunks, so a crash mid-ingest loses none); streamed: a first load has one per order.
            counted = _Counted(commerce_events(iter_job_changes(self.engine, job.job_id)))
            # The object is chosen before it is written: if this process dies after the write
            # but before the job's change records are deleted, the resumed load merges the
            # same records into the same object (deduplicated) rather than into its own run's.
            events_key = job.events_key
            if events_key is None:
                events_key = commerce_telemetry_key(self.run.created_at, self.run.run_id)
                jobs.update_job(self.engine, job.job_id, events_key=events_key)
            write_commerce_events(self.store, key=events_key, events=counted, shop=shop)
            jobs.update_job(self.engine, job.job_id, status="loaded")
            delete_job_changes(self.engine, job.job_id)
            tel.record("upserting", "succeeded", rows=dict(result.rows))
            return LoadOutcome(shop, job.job_id, result.objects, dict(result.rows), result.max_updated_at,
                               start_line, counted.count, ingest_seconds=result.seconds,
                               orders_skipped_older=result.orders_skipped_older,
                               fresh_conflicts=result.fresh_conflicts,
                               events_key=events_key if counted.count else None)
        except BaseException as exc:
            self._fail(tel, shop, partition_key, "upserting", exc)
            raise

    # -- steps 3-5: product, measurement_sales, measurement_performance -------------

    def transforming(self, shop: str, partition_key: str) -> Any:
        """Telemetry for the metric steps; returns the recorder."""
        tel = self.telemetry(shop)
        tel.record("transforming", "started")
        return tel

    @contextmanager
    def guarded(self, shop: str, partition_key: str, step: str) -> Iterator[None]:
        """Any error inside marks the job failed and records ``failed``, then propagates."""
        try:
            yield
        except BaseException as exc:
            self._fail(self.telemetry(shop), shop, partition_key, step, exc)
            raise

    def finish(self, shop: str, partition_key: str, *, rows: Mapping[str, int] | None = None) -> FinishOutcome:
        """Last step of a run: advance the watermark (daily only), close the job, record ``completed``.

        Runs only when every earlier step succeeded, so a failed run never moves the
        watermark; ``advance_watermark`` refuses to move it backwards.
        """
        from shopify_sync.warehouse import jobs

        tel = self.telemetry(shop)
        try:
            before = jobs.get_watermark(self.engine, shop)
            after = before
            job = self.current_job(shop, partition_key)
            if self.run.mode is Mode.DAILY_INCREMENTAL and job is not None:
                fetched_max = getattr(job, "max_updated_at", None)
                candidate = next_watermark(before, fetched_max)
                if candidate is not None and candidate != (as_utc(before) if before else None):
                    jobs.advance_watermark(self.engine, shop, candidate, run_id=self.run.run_id)
                after = jobs.get_watermark(self.engine, shop)
            if job is not None:
                jobs.update_job(self.engine, job.job_id, status="completed")
            if rows is None and job is not None:
                rows = jobs.job_rows(job)
            fields: dict[str, Any] = {"rows": dict(rows or {}), "watermark_before": before, "watermark_after": after}
            if job is not None:
                fields.update(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count,
                              window_start=job.window_start, window_end=job.window_end)
            tel.record("completed", "succeeded", **fields)
            return FinishOutcome(shop, before, after, job is not None)
        except BaseException as exc:
            self._fail(tel, shop, partition_key, "completed", exc)
            raise

    def _fail(self, tel: Any, shop: str, partition_key: str, step: str, exc: BaseException) -> None:
        """Mark the job failed with ``last_error`` and record ``failed``; never masks ``exc``."""
        err = error_summary(exc)
        try:
            from shopify_sync.warehouse import jobs

            job = self.current_job(shop, partition_key)
            if job is not None:
                fields: dict[str, Any] = {"status": "failed", "last_error": f"{err['type']}: {err['message']}"}
                if _operation_is_dead(exc):
                    # Re-polling an operation that ended FAILED/CANCELED would only
                    # re-raise; the next attempt must submit a new one.
                    fields["bulk_operation_id"] = None
                jobs.update_job(self.engine, job.job_id, **fields)
        except Exception:  # noqa: BLE001 - the original error is what the operator needs
            pass
        try:
            tel.record("failed", "failed", error={"type": err["type"], "message": f"{step}: {err['message']}"})
        except Exception:  # noqa: BLE001
            pass


def commerce_events(changes: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """COMMERCE_TELEMETRY events (SPEC §6) from the ingest's per-order change records, lazily.

    The ingest already yields one record per kind of change (created, status_changed,
    refunded, cancelled) with ``at`` / ``before`` / ``after``; this only fixes the shape.
    """
    return (
        {"order_id": c.order_id, "order_name": c.order_name, "event": c.kind, "at": c.at,
         "before": c.before, "after": c.after}
        for c in changes
    )


class _Counted(Iterator[Any]):
    """Counts what passes through an iterator (the events written, for the outcome)."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._it = iter(items)
        self.count = 0

    def __next__(self) -> Any:
        item = next(self._it)
        self.count += 1
        return item


def _operation_is_dead(exc: BaseException) -> bool:
    """The stored bulk operation ended for good (FAILED, CANCELED, budget-cancelled).

    Download errors are excluded: their operation COMPLETED and its file can be fetched
    again (the client resubmits by itself if the URL has expired).
    """
    try:
        from shopify_sync.shopify.errors import DownloadError, ShopifyError
    except ImportError:
        return False
    return (isinstance(exc, ShopifyError) and not isinstance(exc, DownloadError)
            and bool(getattr(exc, "operation_id", None)))


# --------------------------------------------------------------------------------------
# Read-only lookups over sync_job / sync_watermark for checks, replay and `status`.
# --------------------------------------------------------------------------------------


def latest_job(engine: Any, *, shop: str, job_type: str, partition_key: str) -> Any | None:
    """The newest sync_job of (shop, job_type, partition_key), finished or not."""
    from shopify_sync.warehouse import jobs

    return jobs.latest_job(engine, shop=shop, job_type=job_type, partition_key=partition_key)


def archived_jobs(engine: Any, run_id: str) -> list[Any]:
    from shopify_sync.warehouse import jobs

    return list(jobs.archived_jobs(engine, run_id))


def last_success_at(engine: Any, shop: str, job_type: str) -> datetime | None:
    from shopify_sync.warehouse import jobs

    return jobs.last_success_at(engine, shop, job_type)


def shop_status(engine: Any, shop: str) -> dict[str, str]:
    """One line of ``shopify-sync status``."""
    from shopify_sync.warehouse import jobs

    wm = jobs.get_watermark(engine, shop)
    job = jobs.latest_job_of_shop(engine, shop)

    def fmt(ts: datetime | None) -> str:
        return as_utc(ts).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "—"

    if job is None:
        return {"shop": shop, "watermark": fmt(wm), "job": "never synced", "status": "—", "window": "—",
                "run_id": "—", "updated": "—"}
    window = f"{fmt(job.window_start)} .. {fmt(job.window_end) if job.window_end else 'now'}"
    status = job.status + (f" ({job.last_error[:60]})" if job.status == "failed" and job.last_error else "")
    return {"shop": shop, "watermark": fmt(wm), "job": f"{job.job_type} {job.partition_key}", "status": status,
            "window": window, "run_id": job.run_id or "—", "updated": fmt(job.updated_at)}

"""The one owner of job state: every read and write of ``sync_job`` and ``sync_watermark``.

A job row is created before anything is asked of Shopify and carries what a crashed
run needs to continue: the bulk operation id (stored before polling), the archive
key, and ``lines_committed`` (advanced by the ingest in the same transaction as each
chunk's rows, through ``record_chunk``). No other module holds SQL against these two
tables: the sync steps, the ingest, the checks, the CLI and the API all come here.

Operations: claim (``create_job``), resume (``find_resumable_job``, ``resume_job``), the shop's lane
(one daily or replay run per shop: ``lane_holder``, ``take_over``, ``unsettled_jobs``, ``ShopBusy``),
transitions (``set_operation`` … ``record_chunk`` / ``reset_ingest`` inside the ingest's transactions),
close (``complete_job``, ``fail_job``, ``close_job``), queries, and the watermark. The engine
handed in is already migrated (``make_engine`` applies the schema once).
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from shopify_sync.timeutil import as_utc_or_none, naive_utc, naive_utc_or_none, utcnow
from shopify_sync.vocab import DONE_JOB_STATUSES, JobStatus, Mode
from shopify_sync.warehouse.tables import sync_job, sync_watermark

__all__ = ["JobStatus", "SyncJob", "ShopJobStats", "JobFailure", "create_job", "get_job", "find_resumable_job",
           "resume_job", "set_operation", "mark_downloaded", "adopt_archive", "set_events_key", "mark_loaded",
           "record_chunk", "reset_ingest", "complete_job", "fail_job", "update_job", "latest_job",
           "latest_job_of_shop", "archived_jobs", "last_success_at", "pipeline_stats", "get_watermark",
           "advance_watermark", "job_rows", "LANE", "LANE_MODES", "ShopBusy", "LaneTaken", "lane_holder",
           "take_over", "unsettled_jobs", "close_job", "open_jobs"]

# dagster.yaml's run_monitoring.max_runtime_seconds: no run outlives it, so an open job
# nobody updated for longer has no live run (status and /analytics/pipelines say "abandoned").
STALE_JOB_SECONDS = 14400
# SPEC §3: at most one daily or replay run per shop at a time. A backfill may run beside them
# and takes no lane. ``sync_job.open_lane`` holds LANE on the shop's one unfinished job of these
# modes, under a unique (shop, open_lane) index: the claim is atomic in the database itself.
LANE = "sync"
LANE_MODES = frozenset({Mode.DAILY_INCREMENTAL, Mode.REPLAY})
_UPDATABLE = frozenset(c.name for c in sync_job.columns) - {"job_id", "created_at", "updated_at"}
JobValue = str | int | datetime | JobStatus | Mapping[str, int] | None


@dataclass(frozen=True)
class SyncJob:
    """One ``sync_job`` row, typed; timestamps aware UTC."""

    job_id: str
    run_id: str | None
    shop: str
    job_type: Mode
    partition_key: str
    initiator: str | None
    window_start: datetime | None
    window_end: datetime | None
    status: JobStatus
    bulk_operation_id: str | None
    object_count: int | None
    file_size: int | None
    archive_key: str | None
    lines_committed: int
    attempts: int
    last_error: str | None
    max_updated_at: datetime | None
    rows: dict[str, int] = field(default_factory=dict)
    events_key: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    open_lane: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in DONE_JOB_STATUSES

    @classmethod
    def from_row(cls, row: RowMapping) -> SyncJob:
        rows_json = row["rows_json"]
        return cls(
            job_id=str(row["job_id"]),
            run_id=row["run_id"],
            shop=str(row["shop"]),
            job_type=Mode(row["job_type"]),
            partition_key=str(row["partition_key"]),
            initiator=row["initiator"],
            window_start=as_utc_or_none(row["window_start"]),
            window_end=as_utc_or_none(row["window_end"]),
            status=JobStatus(row["status"]),
            bulk_operation_id=row["bulk_operation_id"],
            object_count=None if row["object_count"] is None else int(row["object_count"]),
            file_size=None if row["file_size"] is None else int(row["file_size"]),
            archive_key=row["archive_key"],
            lines_committed=int(row["lines_committed"] or 0),
            attempts=int(row["attempts"] or 0),
            last_error=row["last_error"],
            max_updated_at=as_utc_or_none(row["max_updated_at"]),
            rows={str(k): int(v) for k, v in json.loads(rows_json).items()} if rows_json else {},
            events_key=row["events_key"],
            created_at=as_utc_or_none(row["created_at"]),
            updated_at=as_utc_or_none(row["updated_at"]),
            open_lane=row["open_lane"],
        )


def job_rows(job: SyncJob) -> dict[str, int]:
    return dict(job.rows)  # the per-table row counts recorded on a job


# -- claim and resume ---------------------------------------------------------------------------


def create_job(
    engine: Engine,
    *,
    shop: str,
    job_type: Mode | str,
    partition_key: str,
    run_id: str | None = None,
    initiator: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    status: JobStatus = JobStatus.CREATED,
    job_id: str | None = None,
    lane: bool = False,
) -> SyncJob:
    """Insert a new sync_job and return it; with ``lane`` it holds the shop's lane (else ``LaneTaken``)."""
    if not shop or not job_type or not partition_key:
        raise ValueError("create_job needs shop, job_type and partition_key")
    now = naive_utc(utcnow())
    new_id = job_id or uuid.uuid4().hex
    try:
        with engine.begin() as conn:
            conn.execute(sync_job.insert().values(
                job_id=new_id, run_id=run_id, shop=shop, job_type=Mode(job_type).value, partition_key=partition_key,
                initiator=initiator, window_start=naive_utc_or_none(window_start),
                window_end=naive_utc_or_none(window_end), status=JobStatus(status).value, lines_committed=0,
                attempts=1, created_at=now, updated_at=now, open_lane=LANE if lane else None))
    except sa.exc.IntegrityError as exc:
        if lane:
            raise LaneTaken(shop) from exc
        raise
    return _require(engine, new_id)


def find_resumable_job(engine: Engine, shop: str, job_type: Mode | str, partition_key: str) -> SyncJob | None:
    """The latest job for (shop, job_type, partition_key) unless it is ``completed``: once a newer
    job exists, an older unfinished one is superseded and must not be resumed."""
    latest = latest_job(engine, shop=shop, job_type=job_type, partition_key=partition_key)
    if latest is None or latest.status is JobStatus.COMPLETED:
        return None
    return latest


def resume_job(engine: Engine, job: SyncJob, run_id: str) -> SyncJob:
    """A later run takes over an unfinished job: it runs again, one attempt more."""
    update_job(engine, job.job_id, run_id=run_id, status=JobStatus.RUNNING, attempts=job.attempts + 1)
    return _require(engine, job.job_id)


class LaneTaken(Exception):
    """``create_job(lane=True)``: another run holds the shop's lane (the unique index refused)."""


class ShopBusy(RuntimeError):
    """A live run holds the shop's lane: this run refuses to start (never retried)."""

    retryable = False  # failures.classify: the other run may take an hour; it does the work

    def __init__(self, shop: str, holder: SyncJob, run_id: str) -> None:
        super().__init__(f"another sync of shop {shop} is running (run {holder.run_id}, {holder.job_type.value} "
                         f"{holder.partition_key}); this run {run_id} was not started")
        self.holder_run_id = holder.run_id


def lane_holder(engine: Engine, shop: str) -> SyncJob | None:
    return _one(engine, sa.select(sync_job).where(sync_job.c.shop == shop, sync_job.c.open_lane == LANE))


def take_over(engine: Engine, job: SyncJob, run_id: str, *, lane: bool) -> SyncJob | None:
    """Compare-and-set the job's run from ``job.run_id`` to ``run_id`` (with ``lane``, it holds the
    shop's lane too); None when another run changed it first or holds the lane."""
    same = sync_job.c.run_id.is_(None) if job.run_id is None else sync_job.c.run_id == job.run_id
    values: dict[str, object] = {"run_id": run_id, "updated_at": naive_utc(utcnow())}
    if lane:
        values["open_lane"] = LANE
    try:
        with engine.begin() as conn:
            moved = conn.execute(sync_job.update().where(sync_job.c.job_id == job.job_id, same).values(**values))
    except sa.exc.IntegrityError:
        return None
    return _require(engine, job.job_id) if moved.rowcount else None


def unsettled_jobs(engine: Engine, shop: str) -> list[SyncJob]:
    """What a new daily or replay run finishes or closes first (SPEC §3), oldest first: the lane's
    holder and any orders job neither completed nor failed (a killed run's of any date or mode).
    CATALOG jobs are left to the catalog step, which resumes its own (they carry no events)."""
    query = (sa.select(sync_job).where(sync_job.c.shop == shop, sync_job.c.job_type != Mode.CATALOG.value, sa.or_(
        sync_job.c.open_lane.is_not(None), sync_job.c.status.not_in([s.value for s in DONE_JOB_STATUSES])))
        .order_by(sync_job.c.created_at, sync_job.c.job_id))
    with engine.connect() as conn:
        return [SyncJob.from_row(row) for row in conn.execute(query).mappings().all()]


# -- transitions --------------------------------------------------------------------------------


def set_operation(engine: Engine, job_id: str, operation_id: str, *, polling: bool = True) -> None:
    """The bulk operation is stored before its first poll: a crash re-polls it instead of paying again."""
    if polling:
        update_job(engine, job_id, bulk_operation_id=operation_id, status=JobStatus.POLLING)
    else:
        update_job(engine, job_id, bulk_operation_id=operation_id)


def mark_downloaded(
    conn: Connection, job_id: str, *, archive_key: str, object_count: int | None,
    bulk_operation_id: str | None = None,
) -> None:
    """The raw file is archived: the job's ingest can start (in the caller's transaction)."""
    fields: dict[str, JobValue] = {"archive_key": archive_key, "object_count": object_count,
                                   "status": JobStatus.DOWNLOADED}
    if bulk_operation_id is not None:
        fields["bulk_operation_id"] = bulk_operation_id
    _update_in(conn, job_id, fields)


def adopt_archive(
    engine: Engine, job_id: str, *, run_id: str, archive_key: str, object_count: int | None,
    bulk_operation_id: str | None,
) -> None:
    """REPLAY: the job takes over the raw file an earlier run archived; its ingest can start."""
    update_job(engine, job_id, run_id=run_id, archive_key=archive_key, object_count=object_count,
               bulk_operation_id=bulk_operation_id, status=JobStatus.DOWNLOADED)


def set_events_key(engine: Engine, job_id: str, events_key: str) -> None:
    update_job(engine, job_id, events_key=events_key)


def mark_loaded(engine: Engine, job_id: str) -> None:
    update_job(engine, job_id, status=JobStatus.LOADED)


def record_chunk(
    conn: Connection, job_id: str, *, lines_committed: int, max_updated_at: datetime | None,
    rows: Mapping[str, int],
) -> None:
    """One ingest chunk is in: committed in the chunk's own transaction, the resume point with it."""
    _update_in(conn, job_id, {"lines_committed": lines_committed, "max_updated_at": max_updated_at,
                              "rows": rows})


def reset_ingest(conn: Connection, job_id: str) -> None:
    """A new file replaces one whose ingest had begun: line numbers do not carry over."""
    _update_in(conn, job_id, {"lines_committed": 0, "max_updated_at": None, "rows": None})


# -- close --------------------------------------------------------------------------------------


def complete_job(engine: Engine, job_id: str) -> None:
    update_job(engine, job_id, status=JobStatus.COMPLETED, open_lane=None)


def close_job(engine: Engine, job_id: str, reason: str) -> None:
    """A later run gave up on an unfinished job (its events published): failed, the shop's lane free.

    A run of the same partition can still continue it, as any failed job.
    """
    update_job(engine, job_id, status=JobStatus.FAILED, last_error=reason, open_lane=None)


def fail_job(engine: Engine, job_id: str, error: str, *, forget_operation: bool = False,
             forget_archive: bool = False) -> None:
    """Mark a job failed with its (already scrubbed) error line. ``forget_operation``: the stored
    operation ended for good (FAILED, CANCELED); ``forget_archive``: the archived file is malformed
    (it stays in the store for the audit). Either way the next attempt submits a new operation."""
    fields: dict[str, JobValue] = {"status": JobStatus.FAILED, "last_error": error}
    if forget_operation or forget_archive:
        fields.update({"bulk_operation_id": None, **({"archive_key": None} if forget_archive else {})})
    update_job(engine, job_id, **fields)


def update_job(engine: Engine, job_id: str, **fields: JobValue) -> None:
    """Set columns of one job (``updated_at`` is stamped); ``rows`` may be given as a dict."""
    with engine.begin() as conn:
        _update_in(conn, job_id, fields)


def _update_in(conn: Connection, job_id: str, fields: Mapping[str, JobValue]) -> None:
    result = conn.execute(sync_job.update().where(sync_job.c.job_id == job_id).values(**_job_values(fields)))
    if result.rowcount == 0:
        raise LookupError(f"no sync_job with job_id {job_id!r}")


def _job_values(fields: Mapping[str, JobValue]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, value in fields.items():
        column = "rows_json" if name == "rows" else name
        if column not in _UPDATABLE:
            raise ValueError(f"sync_job has no updatable column {name!r}")
        stored: object = value
        if column == "rows_json" and isinstance(value, Mapping):
            stored = json.dumps({str(k): int(v) for k, v in value.items()}, sort_keys=True)
        elif isinstance(value, JobStatus | Mode):
            stored = value.value
        elif isinstance(value, datetime):
            stored = naive_utc(value)
        values[column] = stored
    values["updated_at"] = naive_utc(utcnow())
    return values


# -- queries ------------------------------------------------------------------------------------


def _one(engine: Engine, query: sa.Select[tuple[object, ...]]) -> SyncJob | None:
    with engine.connect() as conn:
        return None if (row := conn.execute(query).mappings().first()) is None else SyncJob.from_row(row)


def _require(engine: Engine, job_id: str) -> SyncJob:
    if (job := get_job(engine, job_id)) is None:
        raise LookupError(f"no sync_job with job_id {job_id!r}")
    return job


def get_job(engine: Engine, job_id: str) -> SyncJob | None:
    return _one(engine, sa.select(sync_job).where(sync_job.c.job_id == job_id))


def latest_job(engine: Engine, *, shop: str, job_type: Mode | str, partition_key: str) -> SyncJob | None:
    """The newest sync_job of (shop, job_type, partition_key), finished or not."""
    return _one(engine, sa.select(sync_job)
                .where(sync_job.c.shop == shop, sync_job.c.job_type == Mode(job_type).value,
                       sync_job.c.partition_key == partition_key)
                .order_by(sync_job.c.created_at.desc(), sync_job.c.job_id.desc()).limit(1))


def latest_job_of_shop(engine: Engine, shop: str, *, catalog: bool = False) -> SyncJob | None:
    """The shop's newest orders job, or with ``catalog`` its newest CATALOG job (``shopify-sync status``)."""
    kind = sync_job.c.job_type == Mode.CATALOG.value if catalog else sync_job.c.job_type != Mode.CATALOG.value
    return _one(engine, sa.select(sync_job).where(sync_job.c.shop == shop, kind)
                .order_by(sync_job.c.created_at.desc(), sync_job.c.job_id.desc()).limit(1))


def open_jobs(engine: Engine, shops: Sequence[str]) -> list[SyncJob]:
    """Unfinished jobs of ``shops``, least recently updated first (stale-job reporting)."""
    if not shops:
        return []
    query = (sa.select(sync_job)
             .where(sync_job.c.shop.in_(list(shops)),
                    sync_job.c.status.not_in([s.value for s in DONE_JOB_STATUSES]))
             .order_by(sync_job.c.updated_at, sync_job.c.job_id))
    with engine.connect() as conn:
        return [SyncJob.from_row(row) for row in conn.execute(query).mappings().all()]


def archived_jobs(engine: Engine, run_id: str, *, catalog: bool = False) -> list[SyncJob]:
    """Jobs whose raw orders file (with ``catalog``: CATALOG file) was archived by run ``run_id``
    (the newest per shop), for replay.

    A resumed job records the latest run that worked on it, but its raw file keeps the
    run id of the run that downloaded it; both identify it here. The match is exact: the
    id is user input, so ``%`` and ``_`` are escaped in the SQL filter, and the rows are
    checked again in Python because MariaDB compares under a case-insensitive collation.
    """
    names = {f"{run_id}.jsonl", f"{run_id}.jsonl.gz"}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_job)
            .where(sync_job.c.archive_key.is_not(None),
                   sync_job.c.job_type == Mode.CATALOG.value if catalog
                   else sync_job.c.job_type.not_in([Mode.REPLAY.value, Mode.CATALOG.value]),
                   sa.or_(sync_job.c.run_id == run_id,
                          *(sync_job.c.archive_key.endswith(f"/{name}", autoescape=True) for name in names)))
            .order_by(sync_job.c.shop, sync_job.c.created_at.desc())
        ).mappings().all()
    newest: dict[str, SyncJob] = {}
    for row in rows:
        if row["run_id"] == run_id or posixpath.basename(str(row["archive_key"])) in names:
            newest.setdefault(str(row["shop"]), SyncJob.from_row(row))
    return list(newest.values())


def last_success_at(engine: Engine, shop: str, job_type: Mode | str) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(sync_job.c.updated_at)).where(
            sync_job.c.shop == shop, sync_job.c.job_type == Mode(job_type).value,
            sync_job.c.status == JobStatus.COMPLETED.value)).scalar()
    return as_utc_or_none(value)


@dataclass(frozen=True)
class JobFailure:
    shop: str
    run_id: str | None
    job_type: str
    at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class ShopJobStats:
    """Per-shop health from the ledger (``/analytics/pipelines``)."""

    watermark_at: datetime | None = None
    last_success_at: datetime | None = None
    last_success_run_id: str | None = None
    open_jobs: int = 0


def pipeline_stats(engine: Engine, shops: Sequence[str], *, failure_limit: int) -> tuple[
        dict[str, ShopJobStats], list[JobFailure]]:
    """Watermark, newest success and open jobs per shop (orders jobs: the catalog's are reported on
    their own), and the newest failed jobs of any type (all shops)."""
    job, wm = sync_job, sync_watermark
    orders = job.c.job_type != Mode.CATALOG.value
    with engine.connect() as conn:
        watermarks = {r["shop"]: r["watermark_at"] for r in conn.execute(sa.select(wm)).mappings().all()}
        newest_ok = (sa.select(job.c.shop, sa.func.max(job.c.updated_at).label("at"))
                     .where(job.c.status == JobStatus.COMPLETED.value, orders).group_by(job.c.shop).subquery())
        last_ok = {r["shop"]: r for r in conn.execute(
            sa.select(job.c.shop, job.c.run_id, job.c.updated_at)
            .join(newest_ok, sa.and_(job.c.shop == newest_ok.c.shop, job.c.updated_at == newest_ok.c.at))
            .where(job.c.status == JobStatus.COMPLETED.value, orders)
            .order_by(job.c.shop, job.c.run_id)).mappings().all()}
        open_jobs = {str(s): int(n) for s, n in conn.execute(
            sa.select(job.c.shop, sa.func.count())
            .where(job.c.status.not_in([s.value for s in DONE_JOB_STATUSES]), orders)
            .group_by(job.c.shop)).tuples().all()}
        failed = conn.execute(
            sa.select(job.c.shop, job.c.run_id, job.c.job_type, job.c.updated_at, job.c.last_error)
            .where(job.c.status == JobStatus.FAILED.value)
            .order_by(job.c.updated_at.desc()).limit(failure_limit)).mappings().all()
    stats = {}
    for shop in shops:
        ok = last_ok.get(shop)
        stats[shop] = ShopJobStats(
            watermark_at=as_utc_or_none(watermarks.get(shop)), open_jobs=open_jobs.get(shop, 0),
            last_success_at=as_utc_or_none(ok["updated_at"]) if ok else None,
            last_success_run_id=ok["run_id"] if ok else None)
    failures = [JobFailure(shop=str(r["shop"]), run_id=r["run_id"], job_type=str(r["job_type"]),
                           at=as_utc_or_none(r["updated_at"]), last_error=r["last_error"]) for r in failed]
    return stats, failures


# -- the watermark ------------------------------------------------------------------------------


def get_watermark(engine: Engine, shop: str) -> datetime | None:
    """The shop's watermark (naive UTC, as stored) or None when it has never synced."""
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            sa.select(sync_watermark.c.watermark_at).where(sync_watermark.c.shop == shop)
        ).scalar_one_or_none()
    return value


def advance_watermark(engine: Engine, shop: str, candidate: datetime, run_id: str | None = None) -> datetime:
    """Set the watermark to ``max(old, candidate)`` atomically and return it; never moves backwards.

    A conditional UPDATE does the comparison in the database, so two concurrent runs
    cannot interleave a read and a write; the first write for a shop is an INSERT that
    may race with another, in which case the UPDATE is simply retried.
    """
    if not isinstance(candidate, datetime):
        raise TypeError(f"watermark candidate must be a datetime, got {type(candidate).__name__}")
    cand = naive_utc(candidate)
    for _ in range(3):
        now = naive_utc(utcnow())
        with engine.begin() as conn:
            moved = conn.execute(
                sync_watermark.update()
                .where(sync_watermark.c.shop == shop, sync_watermark.c.watermark_at < cand)
                .values(watermark_at=cand, run_id=run_id, updated_at=now)
            ).rowcount
            if moved:
                return cand
            current: datetime | None = conn.execute(
                sa.select(sync_watermark.c.watermark_at).where(sync_watermark.c.shop == shop)
            ).scalar_one_or_none()
            if current is not None:
                return current
        try:
            with engine.begin() as conn:
                conn.execute(sync_watermark.insert().values(shop=shop, watermark_at=cand, run_id=run_id,
                                                            updated_at=now))
            return cand
        except sa.exc.IntegrityError:
            continue  # another run inserted first: compare again
    raise RuntimeError(f"could not advance the watermark of shop {shop} (concurrent writers)")

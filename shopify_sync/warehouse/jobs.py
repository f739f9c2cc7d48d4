"""``sync_job`` and ``sync_watermark`` accessors: the durable hand-off between sync steps.

A job row is created before anything is asked of Shopify and carries what a crashed
run needs to continue: the bulk operation id (stored before polling), the archive
key, and ``lines_committed`` (advanced by the ingest in the same transaction as
each chunk's rows).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from shopify_sync.warehouse.engine import ensure_schema
from shopify_sync.warehouse.tables import sync_job, sync_watermark

JOB_STATUSES = ("created", "polling", "downloaded", "running", "upserting", "loaded", "completed", "failed")
_UPDATABLE = {c.name for c in sync_job.columns} - {"job_id", "created_at", "updated_at"}
# Written by the system (not user-supplied): ``lines_committed`` belongs to the
# ingest, but resetting it (a replay from line 0) is legitimate, so it stays updatable.


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def create_job(
    engine: Engine,
    *,
    shop: str,
    job_type: str,
    partition_key: str,
    run_id: str | None = None,
    initiator: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    status: str = "created",
    job_id: str | None = None,
) -> Row[Any]:
    """Insert a new sync_job and return it."""
    ensure_schema(engine)
    if not shop or not job_type or not partition_key:
        raise ValueError("create_job needs shop, job_type and partition_key")
    now = utcnow()
    values = {
        "job_id": job_id or uuid.uuid4().hex,
        "run_id": run_id,
        "shop": shop,
        "job_type": job_type,
        "partition_key": partition_key,
        "initiator": initiator,
        "window_start": _naive_utc(window_start),
        "window_end": _naive_utc(window_end),
        "status": status,
        "lines_committed": 0,
        "attempts": 1,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        conn.execute(sync_job.insert().values(**values))
    job = get_job(engine, values["job_id"])
    assert job is not None
    return job


def get_job(engine: Engine, job_id: str) -> Row[Any] | None:
    ensure_schema(engine)
    with engine.connect() as conn:
        return conn.execute(sa.select(sync_job).where(sync_job.c.job_id == job_id)).first()


def find_resumable_job(engine: Engine, shop: str, job_type: str, partition_key: str) -> Row[Any] | None:
    """The latest job for (shop, job_type, partition_key) whose status is not ``completed``.

    Only the latest one counts: once a newer job exists, an older unfinished one is
    superseded and must not be resumed.
    """
    ensure_schema(engine)
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(sync_job)
            .where(sync_job.c.shop == shop, sync_job.c.job_type == job_type,
                   sync_job.c.partition_key == partition_key)
            .order_by(sync_job.c.created_at.desc(), sync_job.c.job_id.desc())
            .limit(1)
        ).first()
    if latest is None or latest.status == "completed":
        return None
    return latest


def _job_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "rows":
            name, value = "rows_json", value
        if name not in _UPDATABLE:
            raise ValueError(f"sync_job has no updatable column {name!r}")
        if name == "rows_json" and value is not None and not isinstance(value, str):
            value = json.dumps(dict(value), sort_keys=True)
        if isinstance(value, datetime):
            value = _naive_utc(value)
        values[name] = value
    values["updated_at"] = utcnow()
    return values


def update_job_in(conn: Connection, job_id: str, **fields: Any) -> None:
    """``update_job`` inside the caller's transaction (the ingest commits it with a chunk)."""
    result = conn.execute(sync_job.update().where(sync_job.c.job_id == job_id).values(**_job_values(fields)))
    if result.rowcount == 0:
        raise LookupError(f"no sync_job with job_id {job_id!r}")


def update_job(engine: Engine, job_id: str, **fields: Any) -> None:
    """Set columns of one job (``updated_at`` is stamped); ``rows`` may be given as a dict."""
    ensure_schema(engine)
    with engine.begin() as conn:
        update_job_in(conn, job_id, **fields)


def job_rows(job: Row[Any]) -> dict[str, int]:
    """The per-table row counts recorded on a job (``rows_json``)."""
    return {str(k): int(v) for k, v in json.loads(job.rows_json).items()} if job.rows_json else {}


def get_watermark(engine: Engine, shop: str) -> datetime | None:
    """The shop's watermark (naive UTC) or None when it has never synced."""
    ensure_schema(engine)
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sync_watermark.c.watermark_at).where(sync_watermark.c.shop == shop)
        ).scalar_one_or_none()


def advance_watermark(engine: Engine, shop: str, candidate: datetime, run_id: str | None = None) -> datetime:
    """Set the watermark to ``max(old, candidate)`` atomically and return it; never moves backwards.

    A conditional UPDATE does the comparison in the database, so two concurrent runs
    cannot interleave a read and a write; the first write for a shop is an INSERT that
    may race with another, in which case the UPDATE is simply retried.
    """
    ensure_schema(engine)
    if not isinstance(candidate, datetime):
        raise TypeError(f"watermark candidate must be a datetime, got {type(candidate).__name__}")
    cand = _naive_utc(candidate)
    for _ in range(3):
        now = utcnow()
        with engine.begin() as conn:
            moved = conn.execute(
                sync_watermark.update()
                .where(sync_watermark.c.shop == shop, sync_watermark.c.watermark_at < cand)
                .values(watermark_at=cand, run_id=run_id, updated_at=now)
            ).rowcount
            if moved:
                return cand  # type: ignore[return-value]
            current = conn.execute(
                sa.select(sync_watermark.c.watermark_at).where(sync_watermark.c.shop == shop)
            ).scalar_one_or_none()
            if current is not None:
                return current
        try:
            with engine.begin() as conn:
                conn.execute(sync_watermark.insert().values(shop=shop, watermark_at=cand, run_id=run_id,
                                                            updated_at=now))
            return cand  # type: ignore[return-value]
        except sa.exc.IntegrityError:
            continue  # another run inserted first: compare again
    raise RuntimeError(f"could not advance the watermark of shop {shop} (concurrent writers)")

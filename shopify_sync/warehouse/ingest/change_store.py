"""The one store of change records: ``sync_job_changes``, one row per committed chunk.

Each chunk's records are written in the chunk's own transaction, so they are committed
exactly with its rows: a crash loses none, a resume writes none twice. The load step
reads them back with ``iter_job_change_frames`` (an attempt that crashed included), writes the
events, then deletes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shopify_sync.vocab import ChangeKind
from shopify_sync.warehouse.ingest.decide import CHANGES_SCHEMA
from shopify_sync.warehouse.ingest.model import ChangeValue, OrderChange
from shopify_sync.warehouse.jobs import reset_ingest
from shopify_sync.warehouse.tables import sync_job_changes
from shopify_sync.warehouse.types import MONEY_SCALE

_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


def store_changes(conn: Connection, job_id: str, start_line: int, end_line: int, changes: pl.DataFrame) -> None:
    """A chunk's change records, in the chunk's transaction. Written as plain strings (the
    oldest compat level), so only the bytes referenced are stored, not whole shared buffers."""
    if changes.height == 0:
        return
    table = changes.cast(CHANGES_SCHEMA).to_arrow(compat_level=pl.CompatLevel.oldest())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    conn.execute(sa.insert(sync_job_changes).values(job_id=job_id, start_line=start_line, end_line=end_line,
                                                    payload=sink.getvalue().to_pybytes()))


def changes_from_frame(frame: pl.DataFrame) -> list[OrderChange]:
    """Expand the compact change frame into event records (one per order and kind)."""
    out: list[OrderChange] = []
    for r in frame.iter_rows(named=True):
        at = r["updated_at"].replace(tzinfo=UTC)
        refunded = None if r["total_refunded"] is None else Decimal(r["total_refunded"])
        prev_units = r["previous_refunded_units"]
        prev_refunded = None if prev_units is None else Decimal(prev_units).scaleb(-MONEY_SCALE)
        cancelled_at = None if r["cancelled_at"] is None else r["cancelled_at"].replace(tzinfo=UTC)
        status: dict[str, ChangeValue] = {"financial_status": r["financial_status"],
                                          "fulfillment_status": r["fulfillment_status"]}
        order_id, name, currency = r["order_id"], r["order_name"], r["currency_code"]
        if r[ChangeKind.CREATED.value]:
            out.append(OrderChange(order_id, name, ChangeKind.CREATED, at, None,
                                   {**status, "total_refunded": refunded, "cancelled_at": cancelled_at,
                                    "currency_code": currency}))
        if r[ChangeKind.STATUS_CHANGED.value]:
            out.append(OrderChange(order_id, name, ChangeKind.STATUS_CHANGED, at,
                                   {"financial_status": r["previous_financial_status"],
                                    "fulfillment_status": r["previous_fulfillment_status"]}, status))
        if r[ChangeKind.REFUNDED.value]:
            out.append(OrderChange(order_id, name, ChangeKind.REFUNDED, at,
                                   {"total_refunded": prev_refunded, "currency_code": currency},
                                   {"total_refunded": refunded, "currency_code": currency}))
        if r[ChangeKind.CANCELLED.value]:
            out.append(OrderChange(order_id, name, ChangeKind.CANCELLED, at, {"cancelled_at": None},
                                   {"cancelled_at": cancelled_at}))
    return out


def iter_job_change_frames(engine: Engine, job_id: str) -> Iterator[pl.DataFrame]:
    """The compact change frame (``CHANGES_SCHEMA``) of each of a job's committed chunks, in
    file order, whichever run committed them (an attempt that crashed included); one chunk
    in memory at a time."""
    with engine.connect() as conn:
        starts = conn.execute(sa.select(sync_job_changes.c.start_line)
                              .where(sync_job_changes.c.job_id == job_id)
                              .order_by(sync_job_changes.c.start_line)).scalars().all()
    for start in starts:
        with engine.connect() as conn:
            payload = conn.execute(sa.select(sync_job_changes.c.payload).where(
                sync_job_changes.c.job_id == job_id, sync_job_changes.c.start_line == start)).scalar_one()
        frame = pl.from_arrow(pa.ipc.open_stream(payload).read_all())
        assert isinstance(frame, pl.DataFrame)
        yield frame


def iter_job_changes(engine: Engine, job_id: str) -> Iterator[OrderChange]:
    """Every change record of a job's committed chunks as ``OrderChange`` objects (see
    ``iter_job_change_frames``; the load writes its events from the frames directly)."""
    for frame in iter_job_change_frames(engine, job_id):
        yield from changes_from_frame(frame)


def delete_job_changes(engine: Engine, job_id: str) -> None:
    """Drop a job's stored change records once its events are written."""
    with engine.begin() as conn:
        conn.execute(sa.delete(sync_job_changes).where(sync_job_changes.c.job_id == job_id))


def delete_changes_from(engine: Engine, job_id: str, start_line: int) -> None:
    """Before a resume: the records at or past the resume point belong to chunks about to be
    written again."""
    with engine.begin() as conn:
        conn.execute(sa.delete(sync_job_changes).where(sync_job_changes.c.job_id == job_id,
                                                      sync_job_changes.c.start_line >= start_line))


def restart_job_ingest(conn: Connection, job_id: str) -> None:
    """The job's archive was replaced by a newly fetched file: its committed line count
    belongs to the old file, and resuming the new one there would skip lines that were never
    written. The next ingest starts at line 0 (re-writing what the old file committed is
    idempotent). The change records of the chunks already committed are kept, moved below
    every start line an ingest uses (whose restart deletes its own from the resume point
    on), and still in the order they were made: their events happened in the warehouse, and
    the new file, holding the same versions, would not report them again. Runs inside the
    caller's transaction."""
    bounds = conn.execute(sa.select(sa.func.min(sync_job_changes.c.start_line),
                                    sa.func.max(sync_job_changes.c.end_line))
                          .where(sync_job_changes.c.job_id == job_id)).one()
    if bounds[0] is not None:
        low, high = min(int(bounds[0]), 0), int(bounds[1])
        # One shift past every existing key: no row ever lands on one not yet moved, which
        # a per-row unique check (PostgreSQL, SQLite) could refuse, whatever the row order.
        shift = high - low + 1
        conn.execute(sync_job_changes.update().where(sync_job_changes.c.job_id == job_id).values(
            start_line=sync_job_changes.c.start_line - shift, end_line=sync_job_changes.c.end_line - shift))
    reset_ingest(conn, job_id)

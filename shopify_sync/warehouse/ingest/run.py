"""``ingest_jsonl``: the loop over read → map → decide → write, one chunk at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from shopify_sync.timeutil import as_utc_or_none
from shopify_sync.warehouse.ingest import upsert
from shopify_sync.warehouse.ingest.change_store import delete_changes_from
from shopify_sync.warehouse.ingest.decide import Parents, decide, parent_versions, stored_versions
from shopify_sync.warehouse.ingest.model import (
    TABLES,
    ChunkFrames,
    ChunkProgress,
    Clock,
    IngestError,
    IngestResult,
)
from shopify_sync.warehouse.ingest.read import Prefetch, cut_lines, iter_chunks, malloc_trim, read_frames
from shopify_sync.warehouse.ingest.write import ChunkWriter, JobMark
from shopify_sync.warehouse.jobs import get_job


@dataclass
class _Tally:
    """The running totals of the file, the committed prefix of a resume included."""

    lines_committed: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    max_updated_at: datetime | None = None
    objects: int = 0
    chunks: int = 0  # committed by this call
    skipped: int = 0  # orders older than their stored row, in this call's chunks

    def with_chunk(self, frames: ChunkFrames) -> tuple[dict[str, int], datetime | None]:
        """(rows, max_updated_at) once this chunk is in: committed with it."""
        rows = {k: self.rows[k] + n for k, n in frames.rows.items()}
        chunk_max = frames.max_updated_at
        if chunk_max is None or (self.max_updated_at is not None and chunk_max <= self.max_updated_at):
            return rows, self.max_updated_at
        return rows, chunk_max

    def add(self, frames: ChunkFrames, totals: tuple[dict[str, int], datetime | None] | None = None) -> None:
        self.rows, self.max_updated_at = totals if totals is not None else self.with_chunk(frames)
        self.objects += frames.n_orders + frames.n_lines  # every non-blank line is one or the other

    def committed(self, end_line: int, skipped: int) -> None:
        self.lines_committed, self.chunks, self.skipped = end_line, self.chunks + 1, self.skipped + skipped


def _start_line(engine: Engine, path: Path, shop: str, job_id: str | None, chunk_rows: int,
                start_line: int | None) -> int:
    """Check the arguments and the job; where to start (after the job's committed lines)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if not path.is_file():
        raise IngestError(f"JSONL file not found: {path}")
    if job_id is not None:
        job = get_job(engine, job_id)
        if job is None:
            raise IngestError(f"no sync_job with job_id {job_id!r}")
        if job.shop != shop:
            raise IngestError(f"sync_job {job_id} belongs to shop {job.shop}, not {shop}")
        if start_line is None:
            start_line = job.lines_committed
    start_line = start_line or 0
    if start_line < 0:
        raise ValueError(f"start_line must be >= 0, got {start_line}")
    return start_line


def _rebuild(engine: Engine, path: Path, shop: str, start_line: int, chunk_rows: int) -> tuple[_Tally, Parents]:
    """Resume: re-read the committed prefix (no writes) to know every earlier parent again."""
    tally, parents = _Tally(lines_committed=start_line), Parents()
    for first, chunk, n_lines in iter_chunks(path, chunk_rows):
        if first >= start_line:
            break
        if first + n_lines > start_line:
            chunk, _ = cut_lines(chunk, start_line - first)
            n_lines = start_line - first
        frames = read_frames(chunk, n_lines, first, path, shop)
        with engine.connect() as conn:
            stored = stored_versions(conn, shop, frames.orders.get_column("order_id"))
        parents.add(parent_versions(decide(frames.orders, stored)))
        tally.add(frames)
    return tally, parents


def _statement_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        return upsert.default_statement_bytes(conn)


def ingest_jsonl(
    engine: Engine,
    path: str | Path,
    *,
    shop: str,
    job_id: str | None,
    chunk_rows: int,
    start_line: int | None = None,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
    statement_bytes: int | None = None,
) -> IngestResult:
    """Upsert a bulk JSONL file into the order tables, ``chunk_rows`` lines per transaction.

    ``start_line=None`` resumes after ``sync_job.lines_committed`` of ``job_id`` (0
    without a job). Each chunk's rows, its change records (``iter_job_changes``) and the
    job's ``lines_committed`` / ``max_updated_at`` / ``rows_json`` commit together. Raises
    ``IngestError`` for malformed input (earlier chunks stay committed and consistent).
    """
    began, path = time.perf_counter(), Path(path)
    start = _start_line(engine, path, shop, job_id, chunk_rows, start_line)
    if job_id is not None:
        delete_changes_from(engine, job_id, start)
    tally, parents = _rebuild(engine, path, shop, start, chunk_rows) if start else (_Tally(), Parents())
    clock = Clock({})
    writer = ChunkWriter(engine, shop, path, _statement_bytes(engine) if statement_bytes is None else statement_bytes,
                         clock)
    prefetch = Prefetch(path, chunk_rows, start, shop)
    try:
        for first, n_lines, frames in prefetch:
            t0 = time.perf_counter()
            clock.lap("wait_for_parse")
            end_line = first + n_lines
            totals = tally.with_chunk(frames)
            mark = None if job_id is None else JobMark(job_id, first, end_line, rows=totals[0],
                                                        max_updated_at=totals[1])
            committed = writer.commit(frames, parents, mark)
            parents.add(committed.parents)
            tally.add(frames, totals)
            tally.committed(end_line, committed.skipped)
            if on_chunk is not None:
                on_chunk(ChunkProgress(first, end_line, frames.rows, time.perf_counter() - t0))
            clock.lap("on_chunk")
            del frames, committed  # at most two chunks alive: this one goes before the next is parsed
            malloc_trim()
            prefetch.done()
    finally:
        prefetch.close()
        writer.close()
    clock.lap("close")  # so that "analyze" below times the ANALYZE alone
    if sum(tally.rows.values()) >= ANALYZE_AFTER_ROWS:
        refresh_statistics(engine)
        clock.lap("analyze")
    timings = {**clock.timings, **{f"prefetch_{name}": s for name, s in prefetch.timings.items()}}
    return IngestResult(
        objects=tally.objects, rows=tally.rows, max_updated_at=as_utc_or_none(tally.max_updated_at),
        start_line=start, lines_committed=tally.lines_committed, chunks=tally.chunks,
        orders_skipped_older=tally.skipped, size_retries=writer.size_retries, fresh_conflicts=writer.fresh_conflicts,
        seconds=time.perf_counter() - began, timings={k: round(v, 3) for k, v in timings.items()},
    )


# Rows written by one call past which PostgreSQL's planner statistics are refreshed.
ANALYZE_AFTER_ROWS = 100_000
_ANALYZED = ("order_header", "order_line_item", "order_refund", "measurement_day_sum")


def refresh_statistics(engine: Engine) -> None:
    """``ANALYZE`` the tables a bulk load filled, on PostgreSQL (what its manual advises
    after a bulk load).

    Autovacuum analyzes a table only on its next round after a tenth of it changed, so the
    checks and metrics right after a backfill were planned on empty-table estimates: the
    product check joined 900k orders to their lines by a nested loop in 3.2 s instead of a
    hash join in 2.3 s at 1M orders, and the ANALYZE took 0.9 s (docs/benchmarks.md, session 9).
    MariaDB's InnoDB recalculates its statistics itself after such a change; SQLite's
    planner does not use them unless asked to.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {', '.join(_ANALYZED)}")

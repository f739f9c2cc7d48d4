"""What the ingest hands out and passes between its parts: errors, change records, results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from shopify_sync.vocab import ChangeKind

# A value in a change record's before / after: a status, an amount, a time, or unknown.
ChangeValue = str | Decimal | datetime | None
TABLES = ("order_header", "order_line_item", "order_refund")


class IngestError(ValueError):
    """Malformed JSONL (or an unusable job): the message names the line number and the reason."""

    def __init__(self, reason: str, line: int | None = None, path: str | Path | None = None) -> None:
        self.line = line
        self.reason = reason
        # Raised while reading a file's lines (it names the file): the file itself is bad.
        self.bad_file = path is not None
        where = f"{Path(path).name}, line {line}: " if path is not None and line is not None else (
            f"line {line}: " if line is not None else "")
        super().__init__(f"{where}{reason}")


@dataclass(frozen=True)
class OrderChange:
    """One COMMERCE_TELEMETRY event of an applied order versus its stored row.

    ``kind`` (alias ``event``): ``created``, ``status_changed`` (financial or fulfillment
    status), ``refunded`` (total_refunded grew), ``cancelled``; an order that changed in
    several ways yields one record per kind. ``at`` is the order's updatedAt;
    ``before`` / ``after`` hold the fields that changed (money as Decimal).
    """

    order_id: int
    order_name: str | None
    kind: ChangeKind
    at: datetime
    before: dict[str, ChangeValue] | None
    after: dict[str, ChangeValue]

    @property
    def event(self) -> ChangeKind:
        return self.kind


@dataclass(frozen=True)
class ChunkProgress:
    """Passed to ``on_chunk`` after each committed chunk."""

    start_line: int
    end_line: int
    rows: dict[str, int]
    seconds: float


@dataclass
class IngestResult:
    """What one call did. The change records are not here: they are committed with their
    chunks in ``sync_job_changes`` and read back with ``iter_job_changes(engine, job_id)``."""

    objects: int
    rows: dict[str, int]
    max_updated_at: datetime | None
    start_line: int = 0
    lines_committed: int = 0
    chunks: int = 0
    orders_skipped_older: int = 0
    # chunks re-sent in smaller statements after the database refused the size (or dropped
    # the connection while an oversized statement was being sent)
    size_retries: int = 0
    # chunks redone on the upsert path because a row of a "fresh" order existed after all
    fresh_conflicts: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (benchmark insight)


@dataclass
class ChunkFrames:
    """One chunk mapped and validated, ready for the decision and the writes."""

    orders: pl.DataFrame    # header columns + _line
    refunds: pl.DataFrame   # refund columns without order_updated_at (taken from the order)
    lines: pl.DataFrame     # line columns without order_updated_at + _line + parent_gid
    n_orders: int
    n_lines: int
    n_refunds: int

    @property
    def rows(self) -> dict[str, int]:
        return {"order_header": self.n_orders, "order_line_item": self.n_lines, "order_refund": self.n_refunds}

    @property
    def max_updated_at(self) -> datetime | None:
        value = self.orders.get_column("updated_at").max()
        assert value is None or isinstance(value, datetime)
        return value


class Clock:
    """Seconds per named phase, summed over the chunks (the benchmark's breakdown)."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        self.t = now

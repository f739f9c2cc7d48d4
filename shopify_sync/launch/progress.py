"""Progress lines of a long CLI backfill: a plan at once, then one line per run with
counts and an estimate of the time left (issue 14.13). No Dagster import.

The estimate is by days covered, not by runs: the last month of a range can be a
few days, and a shop's runs are as long as its months.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

# Table -> the word a progress line uses for its rows.
_ROW_WORDS = (("order_header", "orders"), ("order_line_item", "lines"), ("order_refund", "refunds"))


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def row_counts(rows: Mapping[str, int]) -> str:
    return ", ".join(f"{rows.get(table, 0):,} {word}" for table, word in _ROW_WORDS)


@dataclass(frozen=True)
class Piece:
    """One run of the backfill: a shop and its first and last day."""

    shop: str
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass
class BackfillProgress:
    """Writes the lines; ``clock`` is a seam for tests."""

    pieces: Sequence[Piece]
    out: TextIO
    clock: Callable[[], float] = time.monotonic
    started_at: float = 0.0
    days_done: int = 0
    runs_done: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total_days(self) -> int:
        return sum(p.days for p in self.pieces)

    def plan(self, start: date, end: date, shops: Sequence[str]) -> None:
        """The first line, before Dagster loads anything: what will run, and how."""
        self.started_at = self.clock()
        self._print(f"backfill {start}..{end} for {', '.join(shops)}: {len(self.pieces)} runs of at most "
                    f"one month (31 days) each, one run per shop at a time")

    def run_ended(self, piece: Piece, label: str, run_id: str, rows: Mapping[str, int] | None,
                  seconds: float) -> None:
        """One line per finished run: its counts, the share done and the time left."""
        self.runs_done += 1
        self.days_done += piece.days
        for table, count in (rows or {}).items():
            self.totals[table] = self.totals.get(table, 0) + count
        status = "ok" if rows is not None else "FAILED"
        self._print(f"[{self.runs_done:>{len(str(len(self.pieces)))}}/{len(self.pieces)}] {status:<6} {label}  "
                    f"run {run_id[:8]}: {row_counts(rows or {})} in {duration(seconds)}; {self.estimate()}")

    def estimate(self) -> str:
        share = self.days_done / self.total_days if self.total_days else 1.0
        elapsed = self.clock() - self.started_at
        if self.days_done >= self.total_days:
            return f"100% done in {duration(elapsed)}"
        left = elapsed / self.days_done * (self.total_days - self.days_done) if self.days_done else 0.0
        return f"{share:.0%} done, about {duration(left)} left"

    def skipped(self, pieces: Sequence[Piece]) -> None:
        """The rest of a shop's runs after one failed: not started, counted as done for the estimate."""
        self.days_done += sum(p.days for p in pieces)

    def summary(self, failures: int) -> str:
        elapsed = duration(self.clock() - self.started_at)
        head = "backfill done" if failures == 0 else f"backfill ended with {failures} failed run(s)"
        return f"{head}: {self.runs_done} runs, {row_counts(self.totals)} in {elapsed}"

    def _print(self, line: str) -> None:
        # Flushed: the lines must reach a pipe or a log file as they happen.
        print(line, file=self.out, flush=True)

"""The backoff ledger of the daily run's relaunches (SPEC §3, issue 14.14). No Dagster import.

A scheduled daily run that still fails for a transient reason (Shopify unavailable or
throttled beyond the run's own retries, network errors) is launched again with
growing delays, for up to 12 hours after its first failure; a configuration failure is
not relaunched. The ledger is what the relaunch sensor (``defs.retry``) remembers
between ticks, one entry per (shop, day), kept in the sensor's cursor: Dagster stores
the cursor with the tick, so it survives a daemon restart and needs no table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

RETRY_WINDOW_SECONDS = 12 * 3600
FIRST_DELAY_SECONDS = 5 * 60
MAX_DELAY_SECONDS = 2 * 3600
# Entries are forgotten this long after their first failure (the window, plus a margin
# for a last relaunch still running).
KEEP_SECONDS = RETRY_WINDOW_SECONDS + 6 * 3600


def delay_after(failures: int) -> int:
    """Seconds to wait after the ``failures``-th failure: 5 min, 10, 20, 40, 80, then every 2 h."""
    return int(min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, failures - 1)))


class Verdict(StrEnum):
    RELAUNCH = "relaunch"  # due at ``next_at``
    CONFIGURATION = "configuration"  # no retry can help
    EXHAUSTED = "exhausted"  # the next relaunch would start after the 12-hour window
    ALREADY_SEEN = "already_seen"


@dataclass(frozen=True)
class Entry:
    """A (shop, day) whose daily run failed. ``next_at`` is when to relaunch (epoch
    seconds), ``None`` while a relaunch is running or once given up."""

    shop: str
    day: str
    first_failed_at: float
    failures: int
    next_at: float | None
    last_failed_run: str
    seen_runs: tuple[str, ...] = ()
    given_up: str | None = None

    @property
    def key(self) -> str:
        return f"{self.day}|{self.shop}"


class Ledger:
    """Entries by ``<day>|<shop>``; serialised to and from the sensor cursor."""

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries: dict[str, Entry] = dict(entries or {})

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Ledger:
        if not cursor:
            return cls()
        raw = json.loads(cursor)
        return cls({key: Entry(**{**value, "seen_runs": tuple(value.get("seen_runs", ()))})
                    for key, value in raw.get("entries", {}).items()})

    def to_cursor(self) -> str:
        return json.dumps({"entries": {key: asdict(e) for key, e in sorted(self.entries.items())}},
                          sort_keys=True, separators=(",", ":"))

    def record_failure(self, shop: str, day: str, run_id: str, failed_at: float, *, transient: bool) -> Verdict:
        """A failed daily run of ``shop`` for ``day``: schedule its relaunch, or give up."""
        key = f"{day}|{shop}"
        entry = self.entries.get(key) or Entry(shop, day, failed_at, 0, None, run_id)
        if run_id in entry.seen_runs:
            return Verdict.ALREADY_SEEN
        entry = replace(entry, failures=entry.failures + 1, last_failed_run=run_id,
                        seen_runs=(*entry.seen_runs, run_id), next_at=None)
        if not transient:
            self.entries[key] = replace(entry, given_up=Verdict.CONFIGURATION.value)
            return Verdict.CONFIGURATION
        next_at = failed_at + delay_after(entry.failures)
        if next_at > entry.first_failed_at + RETRY_WINDOW_SECONDS:
            self.entries[key] = replace(entry, given_up=Verdict.EXHAUSTED.value)
            return Verdict.EXHAUSTED
        self.entries[key] = replace(entry, next_at=next_at, given_up=None)
        return Verdict.RELAUNCH

    def due(self, now: float) -> list[Entry]:
        """Entries whose relaunch time has come, oldest first."""
        ready = [e for e in self.entries.values() if e.next_at is not None and e.next_at <= now]
        return sorted(ready, key=lambda e: (e.next_at or 0.0, e.key))

    def launched(self, key: str) -> None:
        """A relaunch started: nothing more is due until it fails too (or succeeds)."""
        self.entries[key] = replace(self.entries[key], next_at=None)

    def postpone(self, key: str, until: float) -> None:
        self.entries[key] = replace(self.entries[key], next_at=until)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def prune(self, now: float) -> list[str]:
        """Forget entries whose window ended long ago; their keys."""
        old = [k for k, e in self.entries.items() if now - e.first_failed_at > KEEP_SECONDS]
        for key in old:
            del self.entries[key]
        return old

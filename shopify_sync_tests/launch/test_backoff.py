"""The backoff ledger of the daily run's relaunches (SPEC §3, issue 14.14)."""

from __future__ import annotations

from shopify_sync.launch.backoff import (
    FIRST_DELAY_SECONDS,
    RETRY_WINDOW_SECONDS,
    Ledger,
    Verdict,
    delay_after,
)

T0 = 1_800_000_000.0


def _fail_until_given_up(ledger: Ledger) -> list[float]:
    """Each relaunch fails 90 s after it was due; the delays the ledger chose, until it gives up."""
    delays, now, n = [], T0, 0
    while True:
        n += 1
        verdict = ledger.record_failure("DEMO", "2026-12-01", f"run-{n}", now, transient=True)
        if verdict is not Verdict.RELAUNCH:
            assert verdict is Verdict.EXHAUSTED
            return delays
        (entry,) = ledger.due(now + 10**6)
        assert entry.next_at is not None
        delays.append(entry.next_at - now)
        assert ledger.due(entry.next_at - 1) == []
        ledger.launched(entry.key)
        assert ledger.due(now + 10**6) == []  # nothing more while the relaunch runs
        now = entry.next_at + 90


def test_delays_grow_and_relaunches_stop_after_twelve_hours() -> None:
    ledger = Ledger()
    delays = _fail_until_given_up(ledger)
    assert delays[:6] == [300, 600, 1200, 2400, 4800, 7200]
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:], strict=False))
    assert max(delays) == 7200
    # Every relaunch starts within 12 h of the first failure; one more would not.
    assert T0 + sum(delays) + 90 * (len(delays) - 1) <= T0 + RETRY_WINDOW_SECONDS
    assert 6 <= len(delays) <= 12
    (entry,) = ledger.entries.values()
    assert entry.given_up == "exhausted" and entry.next_at is None and entry.failures == len(delays) + 1


def test_configuration_failures_are_not_relaunched() -> None:
    ledger = Ledger()
    assert ledger.record_failure("DA", "2026-12-01", "r1", T0, transient=False) is Verdict.CONFIGURATION
    assert ledger.due(T0 + RETRY_WINDOW_SECONDS) == []
    # Even after a transient failure was being retried, a configuration failure ends it.
    assert ledger.record_failure("DE", "2026-12-01", "r2", T0, transient=True) is Verdict.RELAUNCH
    assert ledger.record_failure("DE", "2026-12-01", "r3", T0 + 400, transient=False) is Verdict.CONFIGURATION
    assert ledger.due(T0 + RETRY_WINDOW_SECONDS) == []


def test_a_run_is_counted_once_and_the_ledger_survives_the_cursor() -> None:
    ledger = Ledger()
    assert ledger.record_failure("DEMO", "2026-12-01", "r1", T0, transient=True) is Verdict.RELAUNCH
    assert ledger.record_failure("DEMO", "2026-12-01", "r1", T0 + 5, transient=True) is Verdict.ALREADY_SEEN
    assert ledger.record_failure("DEMO", "2026-12-02", "r9", T0, transient=True) is Verdict.RELAUNCH
    again = Ledger.from_cursor(ledger.to_cursor())
    assert again.entries == ledger.entries
    assert [e.key for e in again.due(T0 + FIRST_DELAY_SECONDS)] == ["2026-12-01|DEMO", "2026-12-02|DEMO"]
    assert again.prune(T0 + 10 * RETRY_WINDOW_SECONDS) == ["2026-12-01|DEMO", "2026-12-02|DEMO"]
    assert Ledger.from_cursor(None).entries == {}
    assert delay_after(1) == FIRST_DELAY_SECONDS

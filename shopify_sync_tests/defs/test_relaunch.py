"""The daily run's relaunch sensor against a real Dagster instance (issue 14.14).

The failed runs are real runs in a real (temporary) instance, of a job named like the
sync job whose one step fails the way the sync's steps do: a transient error that
escaped the step's retries, or ``asset_step``'s ``dg.Failure(allow_retries=False)``
for configuration. The sensor reads only the instance (run records, tags, events).
"""

# No `from __future__ import annotations`: Dagster reads the op's context annotation as an object.
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pytest

from shopify_sync.config import load_settings
from shopify_sync.defs import build_definitions
from shopify_sync.defs.retry import SENSOR_NAME, evaluate_relaunches
from shopify_sync.launch.backoff import Ledger
from shopify_sync.launch.plan import (
    SYNC_JOB_NAME,
    TAG_ATTEMPT,
    TAG_RELAUNCH_OF,
    Launch,
    daily_launch,
    partition_tags,
)
from shopify_sync.vocab import Initiator

DAY = date(2026, 12, 1)


@dg.op
def sync_step(context: dg.OpExecutionContext) -> None:
    kind = context.run.tags["test/failure"]
    if kind == "configuration":
        raise dg.Failure(description="SHOPIFY_SYNC_DATABASE_URL: Access denied for user 'shop'", allow_retries=False)
    if kind == "transient":
        raise ConnectionError("Shopify unreachable: connection reset by peer")


@dg.job(name=SYNC_JOB_NAME)
def fake_sync_job() -> None:
    sync_step()


def _run(instance: dg.DagsterInstance, tags: dict[str, str], failure: str) -> dg.DagsterRun:
    result = fake_sync_job.execute_in_process(instance=instance, tags={**tags, "test/failure": failure},
                                              raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def _scheduled(shop: str) -> dict[str, str]:
    launch: Launch = daily_launch(shop, DAY, Initiator.CRON)
    return {**launch.tags, **partition_tags(DAY, shop)}


def _ended(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.end_time is not None
    return record.end_time


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def test_transient_failures_are_relaunched_later_each_time_configuration_failures_never(instance) -> None:
    ledger = Ledger()
    first = _run(instance, _scheduled("DEMO"), "transient")
    _run(instance, _scheduled("DA"), "configuration")
    _run(instance, {**daily_launch("DE", DAY).tags, **partition_tags(DAY, "DE")}, "transient")  # user, not cron
    t0 = _ended(instance, first)

    assert evaluate_relaunches(instance, ledger, t0 + 1) == []  # not yet: the first delay is 5 min
    (request,) = evaluate_relaunches(instance, ledger, t0 + 301)
    assert request.partition_key == f"{DAY}|DEMO"
    assert request.tags["shopify_sync/initiator"] == "cron"
    assert (request.tags[TAG_RELAUNCH_OF], request.tags[TAG_ATTEMPT]) == (first.run_id, "2")
    assert evaluate_relaunches(instance, ledger, t0 + 302) == []  # one relaunch at a time
    assert ledger.entries[f"{DAY}|DA"].given_up == "configuration"
    assert f"{DAY}|DE" not in ledger.entries

    # The relaunch fails too: the next one waits twice as long.
    second = _run(instance, {**request.tags, **partition_tags(DAY, "DEMO")}, "transient")
    t1 = _ended(instance, second)
    assert evaluate_relaunches(instance, ledger, t1 + 599) == []
    (again,) = evaluate_relaunches(instance, ledger, t1 + 601)
    assert again.tags[TAG_ATTEMPT] == "3" and again.tags[TAG_RELAUNCH_OF] == second.run_id
    assert again.run_key != request.run_key
    # The configuration failure is never relaunched, however long the sensor runs.
    assert all(r.partition_key != f"{DAY}|DA" for r in evaluate_relaunches(instance, ledger, t0 + 11 * 3600))


def test_a_newer_successful_run_of_the_day_ends_the_retries(instance) -> None:
    ledger = Ledger()
    failed = _run(instance, _scheduled("DEMO"), "transient")
    t0 = _ended(instance, failed)
    assert evaluate_relaunches(instance, ledger, t0 + 1) == []
    _run(instance, _scheduled("DEMO"), "none")  # an operator re-ran the day, and it worked
    assert evaluate_relaunches(instance, ledger, t0 + 3600) == []
    assert ledger.entries == {}


def test_the_sensor_is_in_the_definitions_and_keeps_its_ledger_in_the_cursor(instance) -> None:
    defs = build_definitions(load_settings({}))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    failed = _run(instance, _scheduled("DEMO"), "transient")
    # A ledger from an earlier tick whose relaunch is long due.
    ledger = Ledger()
    ledger.record_failure("DEMO", DAY.isoformat(), failed.run_id, _ended(instance, failed) - 3600, transient=True)
    context = dg.build_sensor_context(instance=instance, cursor=ledger.to_cursor(), definitions=defs)
    result = sensor.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests or []] == [f"{DAY}|DEMO"]
    assert result.cursor is not None
    assert Ledger.from_cursor(result.cursor).entries[f"{DAY}|DEMO"].next_at is None  # launched

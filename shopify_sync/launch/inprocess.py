"""Running the sync job in this process against a Dagster instance (the CLI's way).

The CLI does not reimplement the sync: it runs the very job the schedule and the UI
launch, in this process, so its runs are recorded in ``DAGSTER_HOME`` and show in the
UI with their logs, materializations and checks. Without a daemon, this module also
does what the daemon would: it refuses a second run of a busy shop and fails the runs
whose process died.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.execution.plan.objects import StepFailureData
from dagster._utils.log import create_console_logger

from shopify_sync.config import ConfigError, Settings
from shopify_sync.defs import build_definitions
from shopify_sync.defs.sensors import complete_run_telemetry
from shopify_sync.errors import ErrorSummary, summarize_error, summarize_text
from shopify_sync.failures import HOME
from shopify_sync.launch.instance_storage import keep_event_log_engines, release_event_log_connections
from shopify_sync.launch.plan import (
    SYNC_JOB_NAME,
    Launch,
    parse_day_range_key,
    replay_launch,
)
from shopify_sync.launch.status import LIVE_STATUSES, TAG_HOST, TAG_PID, dead_process, status_table
from shopify_sync.storage import open_store
from shopify_sync.vocab import Step, StepStatus
from shopify_sync.warehouse import jobs, make_engine

_LIVE = LIVE_STATUSES


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None = None
    # Rows upserted per order table (``order_header``, …), for progress lines.
    rows: dict[str, int] = field(default_factory=dict)
    # Failed (non-blocking) checks of a successful run, e.g. ``catalog_synced``: one line each.
    warnings: list[str] = field(default_factory=list)


def replay_launches(settings: Settings, run_id: str) -> list[Launch]:
    """One REPLAY run per shop whose raw file ``run_id`` archived, over the same days."""
    engine = make_engine(settings.database_url)
    try:
        archived = jobs.archived_jobs(engine, run_id)
    finally:
        engine.dispose()
    return [replay_launch(job.shop, *parse_day_range_key(job.partition_key), run_id) for job in archived]


@lru_cache(maxsize=4)
def _job(settings: Settings) -> dg.JobDefinition:
    return build_definitions(settings).resolve_job_def(SYNC_JOB_NAME)


def fail_orphaned_runs(instance: dg.DagsterInstance, settings: Settings | None = None) -> list[str]:
    """Mark as failed the in-process runs whose process died (SIGKILL, power loss).

    Without a daemon nobody else notices them and they would show as "started"
    forever; the sync_job they left behind is what the next run continues. Their
    telemetry gets the ``failed`` record the run could not write (what the run-status
    sensor does under the daemon).
    """
    orphaned: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME, statuses=_LIVE)):
        if dead_process(run) is None:
            continue
        message = f"process {run.tags[TAG_PID]} running this sync ended without reporting (killed?)"
        instance.report_run_failed(run, message)
        orphaned.append(run.run_id)
        if settings is not None:
            try:
                store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)
                complete_run_telemetry(instance=instance, run=run, store=store, step=Step.FAILED,
                                       status=StepStatus.FAILED, error=ErrorSummary("ProcessDied", message))
            except Exception:  # noqa: BLE001 - bookkeeping of a dead run must not stop a new one
                pass
    return orphaned


def run_sync_job(
    settings: Settings, instance: dg.DagsterInstance, *, tags: dict[str, str], partition_key: str | None,
    log_level: str = "INFO", verbose: bool = False,
) -> RunOutcome:
    """Execute the sync job in this process; never raises for a failed run.

    ``verbose`` keeps Dagster's ERROR records (stack traces) on the console.
    """
    fail_orphaned_runs(instance, settings)
    # At most one run per shop at a time (SPEC §3) is decided by the warehouse when the run
    # claims the shop (sync.claim): a look at the instance's runs first would be check-then-act,
    # and a refusal from there would have no run id of its own to report.
    job = _job(settings) if verbose else _job(settings).with_logger_defs({"console": quiet_console_logger})
    result = job.execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False,
        tags={**tags, TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()},
        # Step-by-step DEBUG events are in the UI; the terminal gets what an operator acts on.
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    if result.success:
        return RunOutcome(result.run_id, True, rows=rows_upserted(result),
                          warnings=[check_line(c) for _, c in failed_checks(result)])
    return RunOutcome(result.run_id, False, first_failure(result), rows=rows_upserted(result))


def rows_upserted(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Rows each order table's materialization reports as upserted by the run.

    A ranged run records one materialization per day of its range, each with the run's
    metadata: a table's count is taken once, not summed over them.
    """
    rows: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        value = materialization.metadata.get("rows_upserted")
        if isinstance(value, dg.IntMetadataValue) and value.value is not None:
            rows[materialization.asset_key.path[-1]] = value.value
    return rows


def step_error_line(data: StepFailureData) -> str:
    """The root cause of a failed step, on one line (a ``dg.Failure`` says it in its description).

    Dagster's wrappers ("Error occurred while executing", "Exceeded max_retries") are
    followed down the ``cause`` chain: the operator needs what they wrap.
    """
    if data.user_failure_data is not None and data.user_failure_data.description:
        return summarize_text("Failure", data.user_failure_data.description).message
    error = data.error
    if error is None:
        return "step failed"
    while error.cause is not None:
        error = error.cause
    # ``message`` starts with the qualified class name (``psycopg.OperationalError: ...``).
    message = error.message.strip()
    qualified, _, rest = message.partition(": ")
    if qualified.rsplit(".", 1)[-1] == error.cls_name:
        message = rest
    return summarize_text(error.cls_name or "Error", message).one_line()


def first_failure(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step and its root cause, else the first failed check, on one line.

    A step failed by a blocking check is told by the check and its ``problems``, not by
    Dagster's generic "blocking asset check failed".
    """
    checks = failed_checks(result)
    for event in result.all_events:
        if event.is_step_failure:
            line = step_error_line(event.step_failure_data)
            own = [c for key, c in checks if key == event.step_key]
            if line.startswith("DagsterAssetCheckFailedError") and own:
                return check_line(own[0])
            return f"step {event.step_key}: {line}"
    return check_line(checks[0][1]) if checks else "run failed"


def failed_checks(result: dg.ExecuteInProcessResult) -> list[tuple[str | None, Any]]:
    """(step key, evaluation) of every check of the run that did not pass."""
    return [(event.step_key, event.asset_check_evaluation_data) for event in result.all_events
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and not event.asset_check_evaluation_data.passed]


def check_line(evaluation: Any) -> str:
    problems = evaluation.metadata.get("problems")
    text = getattr(problems, "value", None)
    return f"check {evaluation.check_name} failed" + (f": {text}" if isinstance(text, str) and text else "")


class _NoErrorRecords(logging.Filter):
    # Dagster logs every failed step with its stack trace and every skipped one on its own
    # line; without --verbose the CLI's one FAILED line says what failed (the UI keeps all).
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


@dg.logger(config_schema={"log_level": dg.Field(str, default_value="INFO")})
def quiet_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Dagster's console logger without its ERROR records (the CLI's default)."""
    log = create_console_logger("dagster", init_context.logger_config["log_level"])
    log.addFilter(_NoErrorRecords())
    return log


def dagster_home(settings: Settings) -> Path:
    """``DAGSTER_HOME`` if set, else ``$SHOPIFY_SYNC_HOME/dagster_home`` (created, and exported)."""
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(raw).expanduser().absolute() if raw else settings.home / "dagster_home"
    config = home / "dagster.yaml"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not config.exists():
            # The project's instance config (per-shop run limit, run monitoring) when running
            # from a checkout; otherwise at least keep Dagster's usage telemetry off.
            shipped = Path(__file__).resolve().parents[2] / "dagster.yaml"
            config.write_text(shipped.read_text() if shipped.is_file() else "telemetry:\n  enabled: false\n")
    except OSError as exc:
        # A read-only or non-directory home: no run can be recorded, and no retry helps.
        raise ConfigError("DAGSTER_HOME" if raw else HOME, summarize_error(exc).one_line()) from exc
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class InProcessLauncher:
    """The CLI's runs and run listing, against the ``DAGSTER_HOME`` instance."""

    def __init__(self, settings: Settings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.verbose = verbose
        dagster_home(settings)
        self.instance = dg.DagsterInstance.get()
        keep_event_log_engines(self.instance)

    def run(self, launch: Launch) -> RunOutcome:
        try:
            return run_sync_job(self.settings, self.instance, tags=launch.tags, partition_key=launch.partition_key,
                                verbose=self.verbose)
        finally:
            release_event_log_connections(self.instance)

    def status(self) -> str:
        return status_table(self.settings, self.instance)

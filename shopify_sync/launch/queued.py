"""Submitting sync runs to a deployed instance's queue (``shopify-sync … --launch``).

The in-process path (``launch.inprocess``) runs the job inside the CLI; this one only
submits it, through the Dagster webserver's GraphQL API (``SHOPIFY_SYNC_DAGSTER_URL``),
so the run waits in the instance's queue under its per-shop limit and the daemon's run
launcher starts it, with the code location's executor (Celery, Kubernetes, Docker: see
docs/deploy.md). ``--wait`` then follows each run in the ``DAGSTER_HOME`` instance, the
deployment's run storage, to the end (through a run retry, if the instance makes one) and
reports it with the same one line as an in-process run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg
import httpx
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, WILL_RETRY_TAG

from shopify_sync.config import ConfigError, Settings
from shopify_sync.launch.inprocess import RunOutcome, dagster_home, step_error_line
from shopify_sync.launch.plan import (
    SYNC_JOB_NAME,
    TAG_PARTITION,
    TAG_PARTITION_DATE,
    TAG_PARTITION_SHOP,
    Launch,
)
from shopify_sync.sync import TAG_MODE
from shopify_sync.vocab import Mode

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

# A Definitions object is served as this repository in every code location.
REPOSITORY_NAME = "__repository__"
LOCATION_VARIABLE = "SHOPIFY_SYNC_DAGSTER_LOCATION"
# How long the daemon may take to start the retry of a run it marked for retry.
RETRY_GRACE_SECONDS = 60.0

_LOCATIONS_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name locationOrLoadError {
      __typename
      ... on RepositoryLocation { repositories { name jobs { name } } }
      ... on PythonError { message } } } }
    ... on PythonError { message }
  }
}
"""


# Per-run pod resources for the K8sRunLauncher (ignored by the other launchers). Sized from
# docs/benchmarks.md: the ingest of 1M line items peaks at 295-347 MB RSS, on top of the run
# worker's Dagster process; a daily run of a few thousand orders stays far below that.
K8S_CONFIG_TAG = "dagster-k8s/config"
RUN_RESOURCES = {
    Mode.FULL_BACKFILL_EXECUTE: {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    Mode.REPLAY: {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    Mode.DAILY_INCREMENTAL: {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
}


def k8s_config_tag(mode: Mode) -> str:
    """The ``dagster-k8s/config`` tag of a run of ``mode``: its run worker pod's resources."""
    return json.dumps({"container_config": {"resources": RUN_RESOURCES[mode]}}, sort_keys=True)


def launch_tags(launch: Launch) -> dict[str, str]:
    """The launch's tags, its pod resources, and the partition tags Dagster derives for an
    in-process run of one partition (a GraphQL launch does not derive them; the per-shop
    limit keys on them)."""
    tags = {**launch.tags, K8S_CONFIG_TAG: k8s_config_tag(Mode(launch.tags[TAG_MODE]))}
    if launch.partition_key is not None:
        day, _, shop = launch.partition_key.partition("|")
        tags.update({TAG_PARTITION: launch.partition_key, TAG_PARTITION_DATE: day, TAG_PARTITION_SHOP: shop})
    return tags


def locations_with_job(payload: dict[str, object], job_name: str = SYNC_JOB_NAME) -> list[str]:
    """The code locations of a ``workspaceOrError`` answer that serve ``job_name``."""
    data = payload.get("data")
    workspace = data.get("workspaceOrError") if isinstance(data, dict) else None
    if not isinstance(workspace, dict) or workspace.get("__typename") != "Workspace":
        raise RuntimeError(f"workspace query failed: {payload.get('errors') or workspace}")
    found = []
    for entry in workspace.get("locationEntries") or []:
        location = entry.get("locationOrLoadError") or {}
        for repo in location.get("repositories") or []:
            if repo.get("name") == REPOSITORY_NAME and any(j.get("name") == job_name for j in repo.get("jobs", [])):
                found.append(entry["name"])
    return found


class QueuedLauncher:
    """Submit runs to the webserver's instance; follow them in the ``DAGSTER_HOME`` instance."""

    def __init__(self, settings: Settings, *, location: str | None = None, poll_seconds: float = 1.0,
                 retry_grace_seconds: float = RETRY_GRACE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.url = settings.dagster_graphql_url.rstrip("/")
        self.location = location or os.environ.get(LOCATION_VARIABLE, "").strip() or None
        self.poll_seconds = poll_seconds
        self.retry_grace_seconds = retry_grace_seconds
        self._clock = clock
        self._sleep = sleep
        dagster_home(settings)
        self.instance = dg.DagsterInstance.get()
        self._client: DagsterGraphQLClient | None = None

    def _graphql(self) -> DagsterGraphQLClient:
        if self._client is None:
            from dagster_graphql import DagsterGraphQLClient

            parsed = httpx.URL(self.url)
            if parsed.scheme not in {"http", "https"} or not parsed.host:
                raise ConfigError("SHOPIFY_SYNC_DAGSTER_URL", f"must be http(s)://host[:port], got {self.url!r}")
            self._client = DagsterGraphQLClient(parsed.host, port_number=parsed.port,
                                                use_https=parsed.scheme == "https",
                                                path_prefix=parsed.path.rstrip("/"), timeout=60)
        return self._client

    def resolve_location(self) -> str:
        """The code location serving the sync job: ``SHOPIFY_SYNC_DAGSTER_LOCATION``, else the only one."""
        if self.location:
            return self.location
        try:
            resp = httpx.post(f"{self.url}/graphql", json={"query": _LOCATIONS_QUERY}, timeout=60)
            resp.raise_for_status()
            found = locations_with_job(resp.json())
        except httpx.HTTPError as exc:
            raise ConfigError("SHOPIFY_SYNC_DAGSTER_URL",
                              f"Dagster webserver at {self.url} not reachable ({type(exc).__name__})") from None
        if len(found) != 1:
            what = f"several code locations serve {SYNC_JOB_NAME}: {', '.join(found)}" if found else \
                f"no code location of the webserver at {self.url} serves {SYNC_JOB_NAME}"
            raise ConfigError(LOCATION_VARIABLE, f"{what}; set it to the location to launch in")
        self.location = found[0]
        return self.location

    def submit(self, launch: Launch) -> str:
        """Queue one run; its run id."""
        location = self.resolve_location()
        return self._graphql().submit_job_execution(
            SYNC_JOB_NAME, repository_location_name=location, repository_name=REPOSITORY_NAME,
            tags=launch_tags(launch))

    def finished_run(self, run_id: str, deadline: float | None) -> dg.DagsterRun:
        """``run_id`` once it has ended (polled in the instance); ``TimeoutError`` past ``deadline``."""
        while True:
            run = self.instance.get_run_by_id(run_id)
            if run is None:
                raise ConfigError("DAGSTER_HOME", f"run {run_id} is not in the instance at {self.instance.root_directory}"
                                  "; point DAGSTER_HOME at the deployment's home (the webserver's instance)")
            if run.is_finished:
                return run
            if deadline is not None and self._clock() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status.value}")
            self._sleep(self.poll_seconds)

    def retry_of(self, run: dg.DagsterRun) -> str | None:
        """The run the instance's run retries started for failed ``run``, if it makes one."""
        if not self.instance.run_retries_enabled:
            return None
        deadline = self._clock() + self.retry_grace_seconds
        while self._clock() < deadline:
            current = self.instance.get_run_by_id(run.run_id) or run
            will_retry = current.tags.get(WILL_RETRY_TAG)
            if will_retry == "false":
                return None
            if will_retry == "true":
                children = self.instance.get_runs(filters=dg.RunsFilter(tags={PARENT_RUN_ID_TAG: run.run_id}))
                if children:
                    return children[0].run_id
            self._sleep(self.poll_seconds)
        return None

    def wait(self, run_id: str, timeout: float | None = None) -> RunOutcome:
        """Follow ``run_id`` (and the retries of it) to the end."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            run = self.finished_run(run_id, deadline)
            if run.status == dg.DagsterRunStatus.SUCCESS:
                return RunOutcome(run_id, True)
            retry = self.retry_of(run) if run.status == dg.DagsterRunStatus.FAILURE else None
            if retry is None:
                return RunOutcome(run_id, False, self.failure_line(run))
            run_id = retry

    def failure_line(self, run: dg.DagsterRun) -> str:
        """The first failed step and its root cause, else the failed check, else the run's failure."""
        records = self.instance.get_records_for_run(run.run_id, limit=10_000).records
        events = [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event]
        for event in events:
            if event.is_step_failure:
                return f"step {event.step_key}: {step_error_line(event.step_failure_data)}"
        for event in events:
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.asset_check_evaluation_data
                if not evaluation.passed:
                    return f"check {evaluation.check_name} failed"
        for record in records:
            entry = record.event_log_entry
            if entry.dagster_event is not None and entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE:
                return (entry.message or "run failed").splitlines()[0][:300]
        return f"run {run.status.value.lower()}"


def run_queued(settings: Settings, launches: list[Launch], *, wait: bool) -> int:
    """``--launch``: queue every run first (they run in parallel, within the per-shop limit),
    then with ``--wait`` report each as the in-process path does; the exit code likewise."""
    launcher = QueuedLauncher(settings)
    submitted = []
    for launch in launches:
        run_id = launcher.submit(launch)
        submitted.append((launch, run_id))
        print(f"queued  {launch.label}  run {run_id}", flush=True)
    if not wait:
        return 0
    failures = 0
    for launch, run_id in submitted:
        outcome = launcher.wait(run_id)
        if outcome.success:
            print(f"ok      {launch.label}  run {outcome.run_id}", flush=True)
        else:
            failures += 1
            print(f"FAILED  {launch.label}  run {outcome.run_id}: {outcome.error}", file=sys.stderr, flush=True)
    return 0 if failures == 0 else 1

"""Launch the daily sync through the running Dagster webserver (GraphQL API).

The API never runs a sync in its own process: going through Dagster puts the run in
the UI, under the instance's run queue and per-shop concurrency limit, exactly like
the schedule and the CLI (SPEC §7/§8).

Launching must never starve the read endpoints (issue 14.11): the GraphQL calls are
made with an async client on the event loop, so a slow webserver holds no worker
thread that ``GET /orders`` needs; each launch has a short overall deadline; and at
most ``MAX_LAUNCHES_IN_FLIGHT`` launches wait on the webserver at once, the others
get a 429 at once instead of queueing behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlparse

import httpx

from shopify_sync.api.errors import ApiError
from shopify_sync.config import ConfigError
from shopify_sync.launch.plan import SYNC_JOB_NAME, TAG_PARTITION, daily_launch, partition_key, partition_tags
from shopify_sync.sync.catalog import full_catalog_tag

log = logging.getLogger(__name__)

# Code location of pyproject [tool.dg] / [tool.dagster] / workspace.yaml; a Definitions object is
# served as the repository "__repository__".
LOCATION_NAME = "shopify_sync"
REPOSITORY_NAME = "__repository__"

# A launch that takes longer than this is answered 503 rather than holding the client
# (and a slot) open. Not shorter: without a run queue (DefaultRunCoordinator) the
# webserver answers the mutation only once the run's process is spawned, which took
# over 10 s on a loaded 2-core machine. Connecting is bounded much tighter.
LAUNCH_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 3.0
# Launches waiting on the webserver at once; more concurrent launches are refused (429).
MAX_LAUNCHES_IN_FLIGHT = 4
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Launched:
    shop: str
    partition: str
    run_id: str
    already_running: bool = False
    full_catalog: bool = False  # the run carries the full catalog refresh tag


# Runs of the same job and partition that have not finished yet.
_IN_FLIGHT_QUERY = """
query InFlight($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId tags { key value } } }
    ... on PythonError { message }
  }
}
"""
_IN_FLIGHT_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]

# The mutation dagster_graphql's client sends (copied: importing that client imports Dagster).
_LAUNCH_MUTATION = """
mutation LaunchSync($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchPipelineRunSuccess { run { runId } }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on PipelineRunConflict { message }
    ... on PipelineConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
_LAUNCHED = {"LaunchRunSuccess", "LaunchPipelineRunSuccess"}


class LaunchRefused(Exception):
    """The webserver answered, but did not launch the run (unknown job, config, conflict)."""


def run_tags(day: date, shop: str, *, full_catalog: bool = False) -> dict[str, str]:
    """The CLI's tags for a daily run (mode, initiator=user, shop, ``--full-catalog``) plus the
    partition tags.

    The per-dimension tags are set explicitly because the instance's one-run-per-shop
    limit keys on ``dagster/partition/shop``.
    """
    return {**daily_launch(shop, day, full_catalog=full_catalog).tags, **partition_tags(day, shop)}


class DagsterLauncher:
    """Submits runs over the webserver's GraphQL API; every failure is an ``ApiError``.

    Used from async route handlers only: the in-flight count lives on the event loop's
    thread, so it needs no lock.
    """

    def __init__(self, graphql_url: str, *, job_name: str = SYNC_JOB_NAME, timeout: float = LAUNCH_TIMEOUT_SECONDS,
                 max_in_flight: int = MAX_LAUNCHES_IN_FLIGHT) -> None:
        parsed = urlparse(graphql_url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ConfigError("SHOPIFY_SYNC_DAGSTER_URL", f"must be http(s)://host[:port], got {graphql_url!r}")
        self.url = graphql_url.rstrip("/")
        self.job_name = job_name
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._in_flight = 0

    async def launch_daily(self, day: date, shops: Sequence[str], *, full_catalog: bool = False) -> list[Launched]:
        """One run per shop for ``day`` (``full_catalog``: refetching the whole product catalog);
        a shop whose run for that day is still queued or running gets that run back instead of
        a duplicate (a double click, or the 06:00 schedule's run still going), and whether that
        run refreshes the whole catalog says its own tag."""
        if self._in_flight >= self.max_in_flight:
            raise ApiError(
                429, "too_many_launches",
                f"{self._in_flight} launches are already waiting for the Dagster webserver at {self.url}; "
                f"try again in {RETRY_AFTER_SECONDS} s",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._in_flight += 1
        launched: list[Launched] = []
        try:
            async with asyncio.timeout(self.timeout), self._client() as client:
                for shop in shops:
                    launched.append(await self._launch_one(client, day, shop, full_catalog))
        except Exception as exc:  # noqa: BLE001 - transport, GraphQL and Dagster errors all mean "not launched"
            raise self._unavailable(exc, launched) from None
        finally:
            self._in_flight -= 1
        return launched

    def _client(self) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, self.timeout))
        return httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def _launch_one(self, client: httpx.AsyncClient, day: date, shop: str, full_catalog: bool) -> Launched:
        partition = partition_key(day, shop)
        existing = await self.in_flight(client, partition)
        if existing is not None:
            run_id, tags = existing
            return Launched(shop, partition, run_id, already_running=True, full_catalog=full_catalog_tag(tags))
        tags = run_tags(day, shop, full_catalog=full_catalog)
        return Launched(shop, partition, await self.submit(client, tags), full_catalog=full_catalog)

    async def in_flight_run(self, client: httpx.AsyncClient, partition: str) -> str | None:
        """The id of an unfinished run of the sync job for ``partition``, if any."""
        found = await self.in_flight(client, partition)
        return found[0] if found is not None else None

    async def in_flight(self, client: httpx.AsyncClient, partition: str) -> tuple[str, dict[str, str]] | None:
        """The id and tags of an unfinished run of the sync job for ``partition``, if any."""
        variables = {"filter": {"pipelineName": self.job_name, "statuses": _IN_FLIGHT_STATUSES,
                                "tags": [{"key": TAG_PARTITION, "value": partition}]}}
        result = await _graphql(client, _IN_FLIGHT_QUERY, variables, "runsOrError")
        if result.get("__typename") != "Runs":
            raise LaunchRefused(f"runs query failed: {result.get('message') or result.get('__typename')}")
        runs = result.get("results") or []
        if not runs:
            return None
        tags = {str(t.get("key")): str(t.get("value")) for t in runs[0].get("tags") or [] if isinstance(t, dict)}
        return str(runs[0]["runId"]), tags

    async def submit(self, client: httpx.AsyncClient, tags: dict[str, str]) -> str:
        """Launch the sync job with ``tags``; its run id."""
        variables = {"executionParams": {
            "selector": {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME,
                         "pipelineName": self.job_name},
            "runConfigData": {}, "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }}
        result = await _graphql(client, _LAUNCH_MUTATION, variables, "launchPipelineExecution")
        kind = str(result.get("__typename"))
        if kind in _LAUNCHED:
            return str(result["run"]["runId"])
        detail = result.get("message") or "; ".join(str(e.get("message")) for e in result.get("errors") or [])
        raise LaunchRefused(f"{kind}: {detail}" if detail else kind)

    def _unavailable(self, exc: Exception, launched: list[Launched]) -> ApiError:
        done = ", ".join(f"{r.shop}={r.run_id}" for r in launched)
        log.warning("launch through Dagster at %s failed: %s", self.url, type(exc).__name__)
        return ApiError(
            503, "dagster_unavailable",
            f"could not launch the sync through Dagster at {self.url} ({_reason(exc, self.timeout)})"
            + (f"; already launched: {done}" if done else ""),
        )


async def _graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
    resp = await client.post("/graphql", json={"query": query, "variables": variables})
    resp.raise_for_status()
    payload = resp.json()
    data = payload.get("data") or {}
    if not isinstance(data.get(field), dict):
        errors = payload.get("errors") or [{}]
        raise LaunchRefused(f"GraphQL error: {str(errors[0].get('message', 'no data'))[:200]}")
    result: dict[str, Any] = data[field]
    return result


def _reason(exc: Exception, timeout: float) -> str:
    """A one-line cause without the GraphQL payload (which can be long)."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        # The mutation may still have been applied: a retry finds that run (in_flight_run).
        return f"the webserver did not answer within {timeout:g} s; a run may still have started"
    if isinstance(exc, httpx.ConnectError | httpx.NetworkError):
        return "webserver unreachable"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"webserver answered HTTP {exc.response.status_code}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__

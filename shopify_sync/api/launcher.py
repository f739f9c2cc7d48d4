"""Launch the daily sync through the running Dagster webserver (GraphQL API).

The API never runs a sync in its own process: going through Dagster puts the run in
the UI, under the instance's run queue and per-shop concurrency limit, exactly like
the schedule and the CLI (SPEC §7/§8).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from shopify_sync.api.errors import ApiError
from shopify_sync.config import ConfigError
from shopify_sync.launch.plan import SYNC_JOB_NAME, TAG_PARTITION, daily_launch, partition_key, partition_tags

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

log = logging.getLogger(__name__)

# Code location of pyproject [tool.dg] / [tool.dagster] / workspace.yaml; a Definitions object is
# served as the repository "__repository__".
LOCATION_NAME = "shopify_sync"
REPOSITORY_NAME = "__repository__"


@dataclass(frozen=True)
class Launched:
    shop: str
    partition: str
    run_id: str
    already_running: bool = False


# Runs of the same job and partition that have not finished yet.
_IN_FLIGHT_QUERY = """
query InFlight($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on PythonError { message }
  }
}
"""
_IN_FLIGHT_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]


def run_tags(day: date, shop: str) -> dict[str, str]:
    """The CLI's tags for a daily run (mode, initiator=user, shop) plus the partition tags.

    The per-dimension tags are set explicitly because the instance's one-run-per-shop
    limit keys on ``dagster/partition/shop``.
    """
    return {**daily_launch(shop, day).tags, **partition_tags(day, shop)}


class DagsterLauncher:
    """Thin wrapper over ``DagsterGraphQLClient`` that turns every failure into a 503 ``ApiError``."""

    def __init__(self, graphql_url: str, *, job_name: str = SYNC_JOB_NAME, timeout: int = 30) -> None:
        parsed = urlparse(graphql_url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ConfigError("SHOPIFY_SYNC_DAGSTER_URL", f"must be http(s)://host[:port], got {graphql_url!r}")
        self.url = graphql_url.rstrip("/")
        self._hostname = parsed.hostname
        self._port = parsed.port
        self._https = parsed.scheme == "https"
        self._path_prefix = parsed.path.rstrip("/")
        self.job_name = job_name
        self.timeout = timeout

    def _client(self) -> DagsterGraphQLClient:
        # Imported here: dagster_graphql pulls in Dagster, seconds of start-up the
        # read-only endpoints do not need.
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(self._hostname, port_number=self._port, use_https=self._https,
                                    path_prefix=self._path_prefix, timeout=self.timeout)

    def in_flight_run(self, partition: str) -> str | None:
        """The id of an unfinished run of the sync job for ``partition``, if any."""
        import httpx

        variables = {"filter": {"pipelineName": self.job_name, "statuses": _IN_FLIGHT_STATUSES,
                                "tags": [{"key": TAG_PARTITION, "value": partition}]}}
        resp = httpx.post(f"{self.url}/graphql", json={"query": _IN_FLIGHT_QUERY, "variables": variables},
                          timeout=self.timeout)
        resp.raise_for_status()
        payload = resp.json()
        result = (payload.get("data") or {}).get("runsOrError") or {}
        if result.get("__typename") != "Runs":
            raise RuntimeError(f"runs query failed: {payload.get('errors') or result.get('message')}")
        runs = result.get("results") or []
        return runs[0]["runId"] if runs else None

    def launch_daily(self, day: date, shops: Sequence[str]) -> list[Launched]:
        """One run per shop for ``day``; a shop whose run for that day is still queued or
        running gets that run back instead of a duplicate (a double click, or the 06:00
        schedule's run still going)."""
        launched: list[Launched] = []
        try:
            client = self._client()
            for shop in shops:
                existing = self.in_flight_run(partition_key(day, shop))
                if existing is not None:
                    launched.append(Launched(shop, partition_key(day, shop), existing, already_running=True))
                    continue
                run_id = client.submit_job_execution(
                    self.job_name,
                    repository_location_name=LOCATION_NAME,
                    repository_name=REPOSITORY_NAME,
                    tags=run_tags(day, shop),
                )
                launched.append(Launched(shop=shop, partition=partition_key(day, shop), run_id=run_id))
        except Exception as exc:  # noqa: BLE001 - transport, GraphQL and Dagster errors all mean "not launched"
            done = ", ".join(f"{r.shop}={r.run_id}" for r in launched)
            log.warning("launch through Dagster at %s failed: %s", self.url, type(exc).__name__)
            reason = _reason(exc)
            raise ApiError(
                503, "dagster_unavailable",
                f"could not launch the sync through Dagster at {self.url} ({reason})"
                + (f"; already launched: {done}" if done else ""),
            ) from None
        return launched


def _reason(exc: Exception) -> str:
    """A one-line cause without the GraphQL payload (which can be long)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if "Connection" in text or "connect" in text.lower() or "Connection" in name:
        return "webserver unreachable"
    return f"{name}: {text[:200]}" if text else name

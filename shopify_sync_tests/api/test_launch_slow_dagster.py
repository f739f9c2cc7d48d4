"""Launching against a slow Dagster webserver must not starve the read endpoints (issue 14.11).

The webserver is stood in for by a real HTTP server on loopback that answers the two
GraphQL documents the launcher sends (the in-flight runs query and the launch
mutation) after a deliberate delay. The staff API runs under uvicorn on loopback, as
``shopify-sync api`` serves it. 45 launches are fired at once; a ``GET /orders`` sent
while they wait must answer before any launch does, the launches beyond the API's
capacity must be refused at once with a 429, and a webserver slower than the launch
deadline gives a 503 instead of a hanging request.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn

from shopify_sync.api.app import create_app
from shopify_sync.api.launcher import MAX_LAUNCHES_IN_FLIGHT, DagsterLauncher
from shopify_sync.config import load_settings

TOKEN = "slow-dagster-token-31"
LAUNCHES = 45


@dataclass
class SlowGraphQL:
    """A GraphQL endpoint that answers after ``delay`` seconds; counts what it was asked."""

    delay: float
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, object]) -> dict[str, object]:
        query = str(body.get("query", ""))
        with self.lock:
            self.requests.append("launch" if "launchPipelineExecution" in query else "runs")
        if "launchPipelineExecution" in query:
            return {"data": {"launchPipelineExecution": {"__typename": "LaunchRunSuccess",
                                                         "run": {"runId": str(uuid.uuid4())}}}}
        return {"data": {"runsOrError": {"__typename": "Runs", "results": []}}}


def _serve_slow(fake: SlowGraphQL) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(fake.delay)
            payload = json.dumps(fake.answer(body)).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the launcher gave up (its deadline) and closed the connection
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def api_against(tmp_path: Path) -> Iterator[object]:
    """``api_against(delay, timeout)`` -> (API base URL, the fake webserver)."""
    started: list[tuple[uvicorn.Server, threading.Thread, ThreadingHTTPServer]] = []

    def start(delay: float, timeout: float) -> tuple[str, SlowGraphQL]:
        fake = SlowGraphQL(delay)
        graphql = _serve_slow(fake)
        url = f"http://127.0.0.1:{graphql.server_address[1]}"
        settings = load_settings({
            "SHOPIFY_SHOPS": "DEMO", "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
            "SHOPIFY_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/warehouse.db",
            "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/objects",
            "SHOPIFY_SYNC_API_TOKEN": TOKEN, "SHOPIFY_SYNC_DAGSTER_URL": url,
        })
        app = create_app(settings, launcher=DagsterLauncher(url, timeout=timeout))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        started.append((server, thread, graphql))
        return f"http://127.0.0.1:{port}", fake

    yield start
    for server, thread, graphql in started:
        server.should_exit = True
        thread.join(timeout=15)
        graphql.shutdown()
        graphql.server_close()


async def _timed(client: httpx.AsyncClient, t0: float, method: str, path: str) -> tuple[httpx.Response, float]:
    resp = await client.request(method, path)
    return resp, time.monotonic() - t0


async def _burst(base: str, delay: float) -> tuple[list[tuple[httpx.Response, float]], tuple[httpx.Response, float]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=LAUNCHES + 5)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:
        warm = await client.get("/orders")  # the warehouse schema is created on first use
        assert warm.status_code == 200, warm.text
        t0 = time.monotonic()
        launches = [asyncio.create_task(_timed(client, t0, "POST", "/api/performance-metrics/sync"))
                    for _ in range(LAUNCHES)]
        await asyncio.sleep(min(1.0, delay / 4))  # the launches are in; the accepted ones wait on the webserver
        read = await _timed(client, t0, "GET", "/orders")
        return list(await asyncio.gather(*launches)), read


def test_a_slow_webserver_does_not_block_reads_and_excess_launches_are_refused(api_against) -> None:
    delay = 4.0
    base, fake = api_against(delay, timeout=60.0)
    launches, (read, read_at) = asyncio.run(_burst(base, delay))

    accepted = [(r, at) for r, at in launches if r.status_code == 202]
    refused = [(r, at) for r, at in launches if r.status_code != 202]
    # The read answered while the accepted launches were still waiting on the webserver
    # (each needs two answers, 2 x delay), and long before the webserver's first answer.
    assert read.status_code == 200, read.text
    assert accepted, [r.text for r, _ in launches[:3]]
    assert read_at < min(at for _, at in accepted)
    assert read_at < delay
    # Beyond the capacity: a clear 429 with Retry-After, at once rather than after the webserver.
    assert len(accepted) == MAX_LAUNCHES_IN_FLIGHT
    assert len(refused) == LAUNCHES - MAX_LAUNCHES_IN_FLIGHT
    for resp, at in refused:
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["code"] == "too_many_launches"
        assert int(resp.headers["Retry-After"]) > 0
        assert at < delay
    # The webserver saw only the accepted launches: one runs query and one mutation each.
    assert sorted(fake.requests) == sorted(["runs", "launch"] * MAX_LAUNCHES_IN_FLIGHT)
    assert len({r.json()["runs"][0]["run_id"] for r, _ in accepted}) == MAX_LAUNCHES_IN_FLIGHT


def test_a_webserver_slower_than_the_deadline_is_a_503_not_a_hang(api_against) -> None:
    delay, timeout = 6.0, 1.0
    base, _ = api_against(delay, timeout=timeout)
    t0 = time.monotonic()
    resp = httpx.post(f"{base}/api/performance-metrics/sync", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=60)
    elapsed = time.monotonic() - t0
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "dagster_unavailable"
    assert "did not answer within 1 s" in resp.json()["error"]["message"]
    assert elapsed < delay

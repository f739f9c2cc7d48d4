"""A real deployment on loopback, for the deployment tests (docs/deploy.md).

``Deployment`` is the Celery one: one code server serves ``deploy/celery_location.py``;
``dagster-webserver`` and ``dagster-daemon`` load it from there. Instance storage is PostgreSQL (its own database)
with the shipped ``deploy/dagster.yaml`` (compute logs to a moto S3 server), and two
Celery workers on the local Redis take the steps, each with its own ``DAGSTER_HOME``,
working directory and ``TMPDIR``. Every process runs in its own session and is stopped by
its own pid. ``docker_deployment.DockerDeployment`` swaps the code server and the launcher.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "shopify_sync_celery"
REDIS_URL = os.environ.get("SHOPIFY_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instance_config(source: Path = REPO / "deploy" / "dagster.yaml", monitoring_poll_seconds: int = 5) -> dict[str, Any]:
    """A shipped instance file; only the daemon's polling is faster for a test."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config["run_monitoring"]["poll_interval_seconds"] = monitoring_poll_seconds
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    return config


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started and everything in its session."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    workers: int = 2
    location: str = LOCATION
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def instance(self) -> dict[str, Any]:
        return instance_config()

    def prepare(self) -> None:
        config = yaml.safe_dump(self.instance())
        for home in (self.home, *(self.root / f"worker{i}" / "dagster_home" for i in self.worker_numbers)):
            home.mkdir(parents=True)
            (home / "dagster.yaml").write_text(config)
        (self.root / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.grpc_port, "location_name": self.location}}]}))

    @property
    def worker_numbers(self) -> range:
        return range(1, self.workers + 1)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(argv, cwd=cwd, env={**self.env, **(env or {})}, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, n: int) -> None:
        """A Celery worker process of its own: solo pool, so its pid is the one running steps."""
        base = self.root / f"worker{n}"
        (base / "tmp").mkdir(exist_ok=True)
        self.start(f"worker{n}", [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster",
                                  "--pool", "solo", "-n", f"w{n}@%h", "--loglevel", "INFO",
                                  "--without-gossip", "--without-mingle", "--without-heartbeat"],
                   env={"DAGSTER_HOME": str(base / "dagster_home"), "TMPDIR": str(base / "tmp"),
                        "PYTHONPATH": str(REPO / "deploy" / "celery")}, cwd=base)

    def start_code_server(self) -> str:
        """Start the code server; what its log says once it serves."""
        self.start("code_server", [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
                                   "-p", str(self.grpc_port), "-f", str(REPO / "deploy" / "celery_location.py"),
                                   "-d", str(REPO), "--location-name", self.location])
        return "Started Dagster code proxy server"

    def start_all(self) -> None:
        self.prepare()
        serving = self.start_code_server()
        for n in self.worker_numbers:
            self.start_worker(n)
        # The webserver and the daemon load the location from the code server at their start.
        self.wait_for("code_server", serving)
        workspace = str(self.root / "workspace.yaml")
        self.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                                 "-w", workspace])
        self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])

    def wait_for(self, name: str, text: str, timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            assert self.procs[name].poll() is None, f"{name} exited:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"{name} did not say {text!r}:\n{self.log(name)}"
            time.sleep(0.5)

    def wait_ready(self, timeout: float = 150) -> None:
        """Until the webserver serves the location and both workers answer a ping."""
        deadline = time.monotonic() + timeout
        query = ('{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus'
                 ' locationOrLoadError { __typename } } } } }')
        while True:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{self.log(name)}"
            try:
                data = httpx.post(f"{self.url}/graphql", json={"query": query}, timeout=5).json()
                entries = data["data"]["workspaceOrError"]["locationEntries"]
                loaded = entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                if loaded and self.workers_alive() == self.workers:
                    return
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, "deployment did not start:\n" + "\n".join(
                f"--- {n}\n{self.log(n)}" for n in self.procs)
            time.sleep(1)

    def workers_alive(self) -> int:
        return sum(" ready." in self.log(f"worker{i}") for i in self.worker_numbers)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop_all(self) -> None:
        # SIGTERM to all first, so their shutdowns overlap; then each is waited for (or killed).
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name in ("webserver", "daemon", *(f"worker{i}" for i in self.worker_numbers), "code_server"):
            if name in self.procs:
                stop(self.procs[name])

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process at the deployment as an operator's shell is: its ``DAGSTER_HOME``
        and webserver, and no ``SHOPIFY_*`` / ``DAGSTER_*`` variable but the deployment's."""
        self.env["DAGSTER_HOME"] = str(self.home)
        self.env["SHOPIFY_SYNC_DAGSTER_URL"] = self.url
        for key in [k for k in os.environ if k.startswith(("SHOPIFY_", "DAGSTER_"))]:
            monkeypatch.delenv(key)
        for key, value in self.env.items():
            if key.startswith(("SHOPIFY_", "DAGSTER_")):
                monkeypatch.setenv(key, value)

    @contextmanager
    def running(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
        """Activated, started and ready; every process stopped afterwards, also on failure."""
        self.activate(monkeypatch)
        try:
            self.start_all()
            self.wait_ready()
            yield self
        finally:
            self.stop_all()


def deployment_env(*, storage_url: str, warehouse_url: str, objects: Path, s3_endpoint: str, bucket: str,
                   shops: dict[str, str], port_home: Path) -> dict[str, str]:
    """The environment every process of the deployment shares."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({
        "DAGSTER_PG_URL": storage_url, "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "SHOPIFY_SYNC_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGSTER_CELERY_BROKER_URL": REDIS_URL, "DAGSTER_CELERY_BACKEND_URL": REDIS_URL,
        "DAGSTER_CELERY_KEY_PREFIX": f"ss_{uuid.uuid4().hex[:10]}:",
        "SHOPIFY_SHOPS": ",".join(shops), "SHOPIFY_SYNC_HOME": str(port_home),
        "SHOPIFY_SYNC_DATABASE_URL": warehouse_url, "SHOPIFY_SYNC_STORAGE_URL": f"file://{objects}",
        "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05", "SHOPIFY_SYNC_START_DATE": "2026-01-01",
    })
    for code, base in shops.items():
        env[f"SHOPIFY_{code}_STORE"] = base
        env[f"SHOPIFY_{code}_TOKEN"] = "shpat_emulator"
    return env
